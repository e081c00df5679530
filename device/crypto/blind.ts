// Blind release (DESIGN §2, the patent's Fig. 3/4): the device sends b = c·r^e_T mod n,
// the escrow answers z = b^d_T mod n, the device recovers x = z·r^-1 mod n and checks
// x^e_T mod n == c before use. r never leaves the device.
import { gcd, modInverse, randomInRange } from './bigint.ts'
import { rawPublic } from './rsa.ts'
import { BlindCheckError, InvalidArgumentError, OutOfRangeError } from './errors.ts'

export { rawPrivate } from './rsa.ts'

export interface Blinded {
  b: bigint
  r: bigint
}

function checkModulus (n: bigint): void {
  if (typeof n !== 'bigint' || n < 5n) throw new InvalidArgumentError('invalid modulus')
}

/** r uniform in Z*_n; `r` may be injected for known-answer tests */
export function blind (c: bigint, eT: bigint, n: bigint, r?: bigint): Blinded {
  checkModulus(n)
  if (typeof c !== 'bigint' || c < 1n || c >= n) throw new OutOfRangeError('c not in [1, n - 1]')
  if (typeof eT !== 'bigint' || eT < 3n) throw new InvalidArgumentError('invalid exponent')
  if (r === undefined) {
    do {
      r = randomInRange(1n, n - 1n)
    } while (gcd(r, n) !== 1n)
  } else if (typeof r !== 'bigint' || r < 1n || r >= n || gcd(r, n) !== 1n) {
    throw new OutOfRangeError('r not in Z*_n')
  }
  return { b: (c * rawPublic(r, eT, n)) % n, r }
}

/**
 * r^-1 mod n. A device computes it while the escrow works on the request (1.8 ms in
 * BigInt at 3072 bits), so the answer unblinds with one multiplication.
 */
export function blindingInverse (r: bigint, n: bigint): bigint {
  checkModulus(n)
  if (typeof r !== 'bigint' || r < 1n || r >= n) throw new OutOfRangeError('r not in Z*_n')
  try {
    return modInverse(r, n)
  } catch {
    throw new OutOfRangeError('r not in Z*_n')
  }
}

/** x = z·r^-1 mod n; `rInv` is blindingInverse(r, n) when computed ahead */
export function unblind (z: bigint, r: bigint, n: bigint, rInv?: bigint): bigint {
  checkModulus(n)
  if (typeof z !== 'bigint' || z < 0n || z >= n) throw new OutOfRangeError('z not in [0, n - 1]')
  if (typeof r !== 'bigint' || r < 1n || r >= n) throw new OutOfRangeError('r not in Z*_n')
  // a wrong inverse would blame a correct escrow for fraud: it is checked (one multiply)
  const inverse = rInv != null && (r * rInv) % n === 1n ? rInv : blindingInverse(r, n)
  return (z * inverse) % n
}

/** Throws BlindCheckError unless x^e_T mod n == c: a wrong answer is the escrow's fault */
export function checkUnblinded (x: bigint, c: bigint, eT: bigint, n: bigint): void {
  checkModulus(n)
  if (typeof x !== 'bigint' || x < 0n || x >= n || typeof c !== 'bigint' || typeof eT !== 'bigint' ||
    rawPublic(x, eT, n) !== c) {
    throw new BlindCheckError()
  }
}
