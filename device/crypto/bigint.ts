// BigInt arithmetic: only for Shamir, blinding multiply/inverse and public ops with e_T
// (OpenSSL refuses a 128-bit public exponent above 3072 bits). Not constant-time.
import { randomBytes } from 'node:crypto'
import { byteLength, bitLength, os2ip } from './bytes.ts'
import { InvalidArgumentError, OutOfRangeError } from './errors.ts'

export function mod (a: bigint, m: bigint): bigint {
  if (m <= 0n) throw new InvalidArgumentError('modulus must be positive')
  const r = a % m
  return r < 0n ? r + m : r
}

export function gcd (a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a
  b = b < 0n ? -b : b
  while (b !== 0n) {
    const t = a % b
    a = b
    b = t
  }
  return a
}

export function lcm (a: bigint, b: bigint): bigint {
  if (a === 0n || b === 0n) return 0n
  const l = (a / gcd(a, b)) * b
  return l < 0n ? -l : l
}

export function modPow (base: bigint, exponent: bigint, m: bigint): bigint {
  if (exponent < 0n) throw new OutOfRangeError('negative exponent')
  if (m === 1n) return 0n
  let result = 1n
  let b = mod(base, m)
  let e = exponent
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % m
    b = (b * b) % m
    e >>= 1n
  }
  return result
}

/** a^-1 mod m by the extended Euclidean algorithm; throws when gcd(a, m) != 1 */
export function modInverse (a: bigint, m: bigint): bigint {
  let oldR = mod(a, m)
  let r = m
  let oldS = 1n
  let s = 0n
  while (r !== 0n) {
    const q = oldR / r
    const nextR = oldR - q * r
    oldR = r
    r = nextR
    const nextS = oldS - q * s
    oldS = s
    s = nextS
  }
  if (oldR !== 1n) throw new InvalidArgumentError('not invertible')
  return mod(oldS, m)
}

/** Uniform in [0, bound) by rejection sampling over crypto.randomBytes */
export function randomBelow (bound: bigint): bigint {
  if (bound <= 0n) throw new InvalidArgumentError('bound must be positive')
  const bits = bitLength(bound - 1n)
  if (bits === 0) return 0n
  const len = byteLength(bound - 1n)
  const topMask = 0xff >>> (len * 8 - bits)
  for (;;) {
    const buf = randomBytes(len)
    buf[0] = (buf[0] ?? 0) & topMask
    const x = os2ip(buf)
    buf.fill(0)
    if (x < bound) return x
  }
}

/** Uniform in [lo, hi] inclusive */
export function randomInRange (lo: bigint, hi: bigint): bigint {
  if (hi < lo) throw new InvalidArgumentError('empty range')
  return lo + randomBelow(hi - lo + 1n)
}
