// EME-OAEP decoding (RFC 8017 §7.1.2 step 3) with SHA-256, MGF1-SHA-256 and the empty
// label: the padding the seller wraps K_dev with. An escrow judging a dispute over that
// wrap gets the raw RSA value m = w^d mod n from the device (never d) and decodes it
// here itself, so it needs neither the device's key nor its word.
import { createHash } from 'node:crypto'
import { u32 } from './bytes.ts'
import { InvalidArgumentError, OaepDecodeError } from './errors.ts'

export const OAEP_HASH_LENGTH = 32
/** SHA-256 of the empty label */
const EMPTY_LABEL_HASH = new Uint8Array(createHash('sha256').digest())

/** MGF1 with SHA-256 (RFC 8017 §B.2.1) */
export function mgf1Sha256 (seed: Uint8Array, length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError('mask length must be a whole number')
  const out = new Uint8Array(Math.ceil(length / OAEP_HASH_LENGTH) * OAEP_HASH_LENGTH)
  for (let counter = 0; counter * OAEP_HASH_LENGTH < length; counter++) {
    out.set(createHash('sha256').update(seed).update(u32(counter)).digest(), counter * OAEP_HASH_LENGTH)
  }
  return out.subarray(0, length)
}

/**
 * The message inside EM, the k-byte big-endian RSA value m (k: the modulus length).
 * Throws OaepDecodeError for any value that is not a valid encoding; the error does
 * not say which check failed.
 */
export function oaepDecodeSha256 (em: Uint8Array): Uint8Array {
  if (!(em instanceof Uint8Array)) throw new InvalidArgumentError('encoded message must be bytes')
  const hLen = OAEP_HASH_LENGTH
  const k = em.length
  if (k < 2 * hLen + 2) throw new OaepDecodeError()
  const maskedSeed = em.subarray(1, 1 + hLen)
  const maskedDb = em.subarray(1 + hLen)
  const seedMask = mgf1Sha256(maskedDb, hLen)
  const seed = new Uint8Array(hLen)
  for (let i = 0; i < hLen; i++) seed[i] = maskedSeed[i]! ^ seedMask[i]!
  const dbMask = mgf1Sha256(seed, k - hLen - 1)
  const db = new Uint8Array(k - hLen - 1)
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i]! ^ dbMask[i]!
  // every check runs whatever the others found: one verdict at the end
  let bad = em[0]!
  for (let i = 0; i < hLen; i++) bad |= db[i]! ^ EMPTY_LABEL_HASH[i]!
  // PS is zero bytes, then 0x01, then M
  let separator = -1
  let inPadding = 1
  for (let i = hLen; i < db.length; i++) {
    const byte = db[i]!
    if (inPadding === 1 && byte === 0x01) {
      separator = i
      inPadding = 0
    } else if (inPadding === 1 && byte !== 0x00) {
      bad |= 1
      inPadding = 0
    }
  }
  if (separator < 0) bad |= 1
  seed.fill(0)
  if (bad !== 0) {
    db.fill(0)
    throw new OaepDecodeError()
  }
  const message = db.slice(separator + 1)
  db.fill(0)
  return message
}
