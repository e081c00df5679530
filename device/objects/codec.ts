// Deterministic encoding of keyfair objects (dag-cbor: sorted map keys, shortest
// integers, no undefined) and their names (CIDv1, dag-cbor codec, sha2-256).
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { bytesEqual, sha256 } from '../crypto/bytes.ts'
import { ObjectError } from './errors.ts'

export function encodeObject (value: unknown): Uint8Array {
  try {
    return dagCbor.encode(value)
  } catch (err) {
    throw new ObjectError(`object cannot be encoded: ${(err as Error).message}`)
  }
}

/** Strict dag-cbor only: any other encoding of the same value would have another CID */
export function decodeObject (bytes: Uint8Array): unknown {
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch {
    throw new ObjectError('not valid dag-cbor')
  }
  // the decoder accepts map keys in any order: re-encoding shows whether these bytes were canonical
  if (!bytesEqual(dagCbor.encode(value), bytes)) throw new ObjectError('not canonical dag-cbor')
  return value
}

export function cidOfBytes (bytes: Uint8Array): CID {
  return CID.createV1(dagCbor.code, Digest.create(sha256Hasher.code, sha256(bytes)))
}

/** The CID that names an object: that of its deterministic encoding */
export function objectCid (value: unknown): CID {
  return cidOfBytes(encodeObject(value))
}

export function parseCid (value: unknown, field: string): CID {
  const cid = CID.asCID(value)
  if (cid == null) throw new ObjectError(`${field} must be a CID`)
  return cid
}
