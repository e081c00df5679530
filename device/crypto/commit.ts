// Key commitments (docs/protocol.md, Key commitments and Disputes). The offer commits to K:
//   kc = SHA-256("keyfair/v1/kc" ‖ K)
// a device-bound licence also commits to each of its two parts, so a dispute can open
// only the part at fault:
//   kcEsc = SHA-256("keyfair/v1/kc-esc" ‖ K_esc),  kcDev = SHA-256("keyfair/v1/kc-dev" ‖ K_dev)
import { bytesEqual, sha256, utf8 } from './bytes.ts'
import { InvalidArgumentError } from './errors.ts'

export const KEY_COMMITMENT_LABEL = 'keyfair/v1/kc'
export const ESCROW_PART_COMMITMENT_LABEL = 'keyfair/v1/kc-esc'
export const DEVICE_PART_COMMITMENT_LABEL = 'keyfair/v1/kc-dev'
export const COMMITMENT_LENGTH = 32

function commit (label: string, value: Uint8Array, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== 32) throw new InvalidArgumentError(`${what} must be 32 bytes`)
  return sha256(utf8(label), value)
}

function matches (commitment: Uint8Array, label: string, value: Uint8Array): boolean {
  if (!(commitment instanceof Uint8Array) || commitment.length !== COMMITMENT_LENGTH) return false
  if (!(value instanceof Uint8Array) || value.length !== 32) return false
  return bytesEqual(sha256(utf8(label), value), commitment)
}

export function keyCommitment (key: Uint8Array): Uint8Array {
  return commit(KEY_COMMITMENT_LABEL, key, 'content key')
}

export function verifyKeyCommitment (key: Uint8Array, kc: Uint8Array): boolean {
  if (!(kc instanceof Uint8Array) || kc.length !== COMMITMENT_LENGTH) return false
  return bytesEqual(keyCommitment(key), kc)
}

/** kcEsc: commits to K_esc = K ⊕ K_dev, the part shared among the escrows */
export function escrowPartCommitment (kEsc: Uint8Array): Uint8Array {
  return commit(ESCROW_PART_COMMITMENT_LABEL, kEsc, 'K_esc')
}

export function verifyEscrowPartCommitment (kEsc: Uint8Array, kcEsc: Uint8Array): boolean {
  return matches(kcEsc, ESCROW_PART_COMMITMENT_LABEL, kEsc)
}

/** kcDev: commits to K_dev, the part wrapped to the device */
export function devicePartCommitment (kDev: Uint8Array): Uint8Array {
  return commit(DEVICE_PART_COMMITMENT_LABEL, kDev, 'K_dev')
}

export function verifyDevicePartCommitment (kDev: Uint8Array, kcDev: Uint8Array): boolean {
  return matches(kcDev, DEVICE_PART_COMMITMENT_LABEL, kDev)
}
