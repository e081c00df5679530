// Shamir t-of-n over GF(P), P = 2^521 − 1 (docs/protocol.md, Key splitting). The 256-bit secret is the
// constant term; share j = u16(j) ‖ f(j) in 66 bytes, j = 1..n, never 0.
import { randomBytes } from 'node:crypto'
import { i2osp, os2ip, readU16, u16, concat } from './bytes.ts'
import { mod, modInverse } from './bigint.ts'
import {
  BadShareError, InconsistentSharesError, InvalidArgumentError, TooFewSharesError
} from './errors.ts'

export const FIELD_PRIME = (1n << 521n) - 1n
export const FIELD_BYTES = 66
export const SHARE_LENGTH = 2 + FIELD_BYTES
export const SECRET_LENGTH = 32
export const MAX_SHARES = 0xffff

/** Uniform in [0, P): 521 random bits, rejecting the single value P itself */
export function randomFieldElement (): bigint {
  for (;;) {
    const buf = randomBytes(FIELD_BYTES)
    buf[0] = (buf[0] ?? 0) & 0x01
    const x = os2ip(buf)
    buf.fill(0)
    if (x < FIELD_PRIME) return x
  }
}

/**
 * Splits a 32-byte secret into n shares, any t of which rebuild it. The
 * coefficients a_1..a_{t-1} come from `randomCoefficient(i)` (default: uniform
 * in [0, P)); injecting them is for known-answer tests only.
 */
export function splitSecret (
  secret: Uint8Array,
  t: number,
  n: number,
  randomCoefficient: (i: number) => bigint = randomFieldElement
): Uint8Array[] {
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_LENGTH) {
    throw new InvalidArgumentError(`secret must be ${SECRET_LENGTH} bytes`)
  }
  if (!Number.isInteger(t) || !Number.isInteger(n) || t < 1 || n < t || n > MAX_SHARES) {
    throw new InvalidArgumentError(`need integers 1 <= t <= n <= ${MAX_SHARES}`)
  }
  const coefficients: bigint[] = [os2ip(secret)]
  for (let i = 1; i < t; i++) {
    const a = randomCoefficient(i)
    if (typeof a !== 'bigint' || a < 0n || a >= FIELD_PRIME) throw new InvalidArgumentError('coefficient not in [0, P)')
    coefficients.push(a)
  }
  const shares: Uint8Array[] = []
  for (let j = 1; j <= n; j++) {
    // Horner
    let y = 0n
    const x = BigInt(j)
    for (let i = coefficients.length - 1; i >= 0; i--) y = (y * x + (coefficients[i] ?? 0n)) % FIELD_PRIME
    shares.push(concat(u16(j), i2osp(y, FIELD_BYTES)))
  }
  return shares
}

export interface ParsedShare {
  j: number
  y: bigint
}

/** Parses and range-checks one share (no secret in the error) */
export function parseShare (share: Uint8Array): ParsedShare {
  if (!(share instanceof Uint8Array) || share.length !== SHARE_LENGTH) {
    throw new BadShareError(`share must be ${SHARE_LENGTH} bytes`)
  }
  const j = readU16(share, 0)
  if (j === 0) throw new BadShareError('share index 0 is not allowed')
  const y = os2ip(share.subarray(2))
  if (y >= FIELD_PRIME) throw new BadShareError(`share ${j} is not a field element`)
  return { j, y }
}

/** The index j of a share */
export function shareIndex (share: Uint8Array): number {
  return parseShare(share).j
}

/**
 * Rebuilds the secret by Lagrange interpolation at 0 from the first t shares
 * (all given shares are checked). Throws on fewer than t shares, malformed or
 * duplicate shares, and on shares that do not yield a 256-bit value.
 */
export function combineShares (shares: Uint8Array[], t: number): Uint8Array {
  if (!Number.isInteger(t) || t < 1 || t > MAX_SHARES) throw new InvalidArgumentError('invalid threshold')
  if (!Array.isArray(shares) || shares.length < t) throw new TooFewSharesError(`need ${t} shares`)
  const parsed = shares.map(parseShare)
  const seen = new Set<number>()
  for (const { j } of parsed) {
    if (seen.has(j)) throw new BadShareError(`duplicate share index ${j}`)
    seen.add(j)
  }
  const used = parsed.slice(0, t)
  let secret = 0n
  for (let i = 0; i < used.length; i++) {
    const xi = BigInt(used[i]?.j ?? 0)
    let num = 1n
    let den = 1n
    for (let m = 0; m < used.length; m++) {
      if (m === i) continue
      const xm = BigInt(used[m]?.j ?? 0)
      num = (num * xm) % FIELD_PRIME
      den = (den * mod(xm - xi, FIELD_PRIME)) % FIELD_PRIME
    }
    const li = (num * modInverse(den, FIELD_PRIME)) % FIELD_PRIME
    secret = (secret + (used[i]?.y ?? 0n) * li) % FIELD_PRIME
  }
  // the secret is 256 bits; anything wider means a wrong share (probability 1 − 2^-265)
  if (secret >= (1n << BigInt(SECRET_LENGTH * 8))) throw new InconsistentSharesError()
  return i2osp(secret, SECRET_LENGTH)
}
