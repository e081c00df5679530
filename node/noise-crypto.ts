// Noise's transport encryption through node:crypto with each key imported once.
// libp2p-noise's default hands the raw 32-byte key to createCipheriv for every message
// (up to 64 KiB), and Node's key checks on raw bytes were ~40% of its decryption time
// (chacha20-poly1305 on 64 KiB messages here: ~700 MB/s with raw keys, ~1100 MB/s with a
// KeyObject). Noise never changes a key's bytes in place, so a key is cached by its array.
// A large message received in pieces (a 64 KiB message usually spans two socket reads)
// is decrypted into a list of the pieces OpenSSL returns, not joined: that cost a copy.
import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { KeyObject } from 'node:crypto'

const CHACHA20_POLY1305 = 'chacha20-poly1305'
const TAG_BYTES = 16
/** below this the default's WebAssembly cipher is faster than OpenSSL's call overhead */
const SMALL_MESSAGE_BYTES = 1200

type NoiseBytes = ReturnType<ICryptoInterface['chaCha20Poly1305Decrypt']>

/**
 * One array as it is, several as a list of them, never joined. libp2p-noise builds on
 * uint8arraylist 2 and keyfair on 3: their lists take each other's (a global symbol marks
 * a list, and both keep its arrays in `bufs`), which the noise tests check.
 */
function asNoiseBytes (pieces: Uint8Array[]): NoiseBytes {
  const nonEmpty = pieces.filter(p => p.byteLength > 0)
  if (nonEmpty.length === 1) return nonEmpty[0]!
  return new Uint8ArrayList(...nonEmpty) as unknown as NoiseBytes
}

export function keyedNoiseCrypto (): ICryptoInterface {
  const keys = new WeakMap<Uint8Array, KeyObject>()
  const keyOf = (k: Uint8Array): KeyObject => {
    let key = keys.get(k)
    if (key === undefined) {
      key = createSecretKey(k)
      keys.set(k, key)
    }
    return key
  }
  return {
    ...defaultCrypto,
    chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
      if (plaintext.byteLength < SMALL_MESSAGE_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
      const cipher = createCipheriv(CHACHA20_POLY1305, keyOf(k), nonce, { authTagLength: TAG_BYTES })
      cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
      const out: Uint8Array[] = []
      for (const piece of plaintext instanceof Uint8Array ? [plaintext] : plaintext) out.push(cipher.update(piece))
      out.push(cipher.final(), cipher.getAuthTag())
      // one array: the TCP socket writes each array of a message with a system call of its own
      return Buffer.concat(out)
    },
    chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
      if (ciphertext.byteLength < SMALL_MESSAGE_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
      const textBytes = ciphertext.byteLength - TAG_BYTES
      const decipher = createDecipheriv(CHACHA20_POLY1305, keyOf(k), nonce, { authTagLength: TAG_BYTES })
      decipher.setAAD(ad, { plaintextLength: textBytes })
      decipher.setAuthTag(ciphertext.subarray(textBytes))
      const text = ciphertext instanceof Uint8Array ? [ciphertext.subarray(0, textBytes)] : ciphertext.sublist(0, textBytes)
      const pieces: Uint8Array[] = []
      for (const piece of text) pieces.push(decipher.update(piece))
      // final() throws when the tag does not authenticate the message
      pieces.push(decipher.final())
      return asNoiseBytes(pieces)
    }
  }
}
