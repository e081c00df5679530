// Key commitment of an offer: kc = SHA-256("keyfair/v1/kc" ‖ K)
import { bytesEqual, sha256, utf8 } from './bytes.ts'
import { InvalidArgumentError } from './errors.ts'

export const KEY_COMMITMENT_LABEL = 'keyfair/v1/kc'

export function keyCommitment (key: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new InvalidArgumentError('content key must be 32 bytes')
  return sha256(utf8(KEY_COMMITMENT_LABEL), key)
}

export function verifyKeyCommitment (key: Uint8Array, kc: Uint8Array): boolean {
  if (!(kc instanceof Uint8Array) || kc.length !== 32) return false
  return bytesEqual(keyCommitment(key), kc)
}
