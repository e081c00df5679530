import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { MalformedFrameError } from '../errors.ts'

/** Deterministic encoding of a message (dag-cbor: sorted map keys, shortest ints, no floats where avoidable). */
export function encodeMessage (value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/** Decodes dag-cbor; anything that is not strict dag-cbor is a malformed frame. */
export function decodeMessage (bytes: Uint8Array): unknown {
  try {
    return dagCbor.decode(bytes)
  } catch (err) {
    throw new MalformedFrameError('frame body is not valid dag-cbor', { cause: err })
  }
}

/** Names a signed object: CIDv1, dag-cbor codec, sha2-256 of its deterministic encoding. */
export async function cidOf (value: unknown): Promise<CID> {
  const bytes = encodeMessage(value)
  return CID.create(1, dagCbor.code, await sha256.digest(bytes))
}
