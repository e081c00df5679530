// What `buy` takes: an offer id or a content id, both CIDs of dag-cbor objects. Kept
// apart from the lookup so the CLI checks an argument without loading the network code.
import { CID } from 'multiformats/cid'
import { UsageError } from '../errors.ts'

/** The multicodec of dag-cbor, the encoding of every keyfair object */
const DAG_CBOR = 0x71

export function parseOfferRef (text: string): CID {
  let cid: CID
  try {
    cid = CID.parse(text.trim())
  } catch (err) {
    throw new UsageError(`'${text}' is not an offer id or a content id (a CID such as bafyrei…)`, { cause: err })
  }
  if (cid.code !== DAG_CBOR) throw new UsageError(`'${text}' is a CID, but not of an offer or a content (those are dag-cbor CIDs, bafyrei…)`)
  return cid.toV1()
}
