import * as dagCbor from '@ipld/dag-cbor'
import { objectCid } from '../../device/objects/codec.ts'
import { MalformedFrameError } from '../errors.ts'
import type { CID } from 'multiformats/cid'

/** Deterministic encoding of a message (dag-cbor: sorted map keys, shortest ints). */
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
  return objectCid(value)
}
