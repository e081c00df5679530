// Deterministic encoding of keyfair objects (dag-cbor: sorted map keys, shortest
// integers, no undefined) and their names (CIDv1, dag-cbor codec, sha2-256).
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { bytesEqual, concat, sha256 } from '../crypto/bytes.ts'
import { ObjectError } from './errors.ts'

export function encodeObject (value: unknown): Uint8Array {
  try {
    return dagCbor.encode(value)
  } catch (err) {
    throw new ObjectError(`object cannot be encoded: ${(err as Error).message}`)
  }
}

/** Encoded map keys (schema field names), so a splice does not encode them each time */
const encodedKeys = new Map<string, Uint8Array>()
const MAX_ENCODED_KEYS = 256

function encodedKey (key: string): Uint8Array {
  let bytes = encodedKeys.get(key)
  if (bytes == null) {
    bytes = dagCbor.encode(key)
    if (encodedKeys.size < MAX_ENCODED_KEYS) encodedKeys.set(key, bytes)
  }
  return bytes
}

/** The CBOR head of a map of `count` entries (major type 5) */
function mapHead (count: number): Uint8Array {
  if (count < 24) return Uint8Array.of(0xa0 | count)
  if (count < 0x100) return Uint8Array.of(0xb8, count)
  if (count < 0x10000) return Uint8Array.of(0xb9, count >>> 8, count & 0xff)
  throw new ObjectError('object has too many fields')
}

/**
 * `encodeObject(map)` when some of its values are already encoded: a request carries
 * the offer, whose encoding the escrow needs anyway (for the offer's CID), so the
 * request is not encoded from scratch twice more. The caller vouches that each
 * `encoded[key]` is `encodeObject(map[key])`; the bytes are what encodeObject gives
 * (dag-cbor orders keys by encoded length, then bytewise).
 */
export function encodeWithEncoded (map: Record<string, unknown>, encoded: Record<string, Uint8Array>): Uint8Array {
  const keys = Object.keys(map).map(key => ({ key, bytes: encodedKey(key) }))
  keys.sort((a, b) => a.bytes.length - b.bytes.length || Buffer.compare(a.bytes, b.bytes))
  const pieces: Uint8Array[] = [mapHead(keys.length)]
  for (const { key, bytes } of keys) pieces.push(bytes, Object.hasOwn(encoded, key) ? encoded[key]! : encodeObject(map[key]))
  return concat(...pieces)
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
