import * as dagCbor from '@ipld/dag-cbor'
import { objectCid } from '../../device/objects/codec.ts'
import { MalformedFrameError } from '../errors.ts'
import type { CID } from 'multiformats/cid'

/** Deterministic encoding of a message (dag-cbor: sorted map keys, shortest ints). */
export function encodeMessage (value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/**
 * Decodes strict dag-cbor; anything else is a malformed frame. The decoder itself refuses
 * indefinite lengths, non-minimal integers, duplicate keys and trailing bytes, but it takes
 * map keys in any order, turns `undefined` into null and invalid UTF-8 into U+FFFD: each of
 * those re-encodes to other bytes, so a frame is accepted only if it is exactly the
 * encoding of what it decodes to (one memcmp; the encoder copies byte strings whole, so a
 * 16 MiB chunk inside a dispute costs one copy, not a walk).
 */
export function decodeMessage (bytes: Uint8Array): unknown {
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (err) {
    throw new MalformedFrameError('frame body is not valid dag-cbor', { cause: err })
  }
  let again: Uint8Array
  try {
    again = dagCbor.encode(value)
  } catch (err) {
    throw new MalformedFrameError('frame body is not canonical dag-cbor', { cause: err })
  }
  if (!sameBytes(again, bytes)) throw new MalformedFrameError('frame body is not canonical dag-cbor')
  return value
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0
}

/** Names a signed object: CIDv1, dag-cbor codec, sha2-256 of its deterministic encoding. */
export async function cidOf (value: unknown): Promise<CID> {
  return objectCid(value)
}
