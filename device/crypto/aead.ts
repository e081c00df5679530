// AES-256-GCM through node:crypto, output as ciphertext ‖ tag(16).
import { createCipheriv, createDecipheriv } from 'node:crypto'

export const GCM_KEY_LENGTH = 32
export const GCM_NONCE_LENGTH = 12
export const GCM_TAG_LENGTH = 16

/** A plain Uint8Array that owns its memory (a pooled Buffer would expose its neighbours) */
export function ownBytes (buf: Buffer): Uint8Array {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.byteLength) {
    return new Uint8Array(buf.buffer, 0, buf.byteLength)
  }
  const out = new Uint8Array(buf)
  buf.fill(0)
  return out
}

export function gcmSeal (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH })
  cipher.setAAD(aad)
  const out = new Uint8Array(plaintext.length + GCM_TAG_LENGTH)
  const ct = cipher.update(plaintext)
  const fin = cipher.final()
  out.set(ct, 0)
  out.set(fin, ct.length)
  out.set(cipher.getAuthTag(), plaintext.length)
  return out
}

/**
 * Opens ciphertext ‖ tag; undefined when the tag does not verify. GCM's update()
 * hands out plaintext before final() checks the tag, so nothing leaves here until it has.
 */
export function gcmOpen (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, data: Uint8Array): Uint8Array | undefined {
  if (data.length < GCM_TAG_LENGTH) return undefined
  const split = data.length - GCM_TAG_LENGTH
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH })
  decipher.setAAD(aad)
  decipher.setAuthTag(data.subarray(split))
  const pt = decipher.update(data.subarray(0, split))
  let fin: Buffer
  try {
    fin = decipher.final()
  } catch {
    pt.fill(0)
    return undefined
  }
  if (fin.length === 0) return ownBytes(pt)
  // GCM is a stream mode so final() yields nothing; handle it anyway
  const out = new Uint8Array(pt.length + fin.length)
  out.set(pt, 0)
  out.set(fin, pt.length)
  pt.fill(0)
  fin.fill(0)
  return out
}
