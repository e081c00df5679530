// Price binding (docs/protocol.md, Price binding): the escrow exponent e_T is derived from the offer's terms,
// so an answer bought under one offer is useless for any other.
import { checkPrimeSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { os2ip, sha256, utf8 } from './bytes.ts'
import { gcd, modInverse } from './bigint.ts'
import { ExponentError, InvalidArgumentError, RsaKeyError } from './errors.ts'
import { carmichael, importRsaPrivateKey } from './rsa.ts'
import type { RsaFactors } from './rsa.ts'

export const PRICE_EXPONENT_LABEL = 'keyfair/v1/e'
/** Miller–Rabin rounds on top of OpenSSL's trial division */
export const PRIME_CHECKS = 64

/**
 * e_T = smallest prime >= (first 16 bytes of SHA-256("keyfair/v1/e" ‖ cid)) | 2^127 | 1.
 * `termsCid` is the binary CID of the terms (cid.bytes).
 */
export function priceExponent (termsCid: Uint8Array): bigint {
  if (!(termsCid instanceof Uint8Array) || termsCid.length === 0) throw new InvalidArgumentError('terms CID must be non-empty bytes')
  const h = sha256(utf8(PRICE_EXPONENT_LABEL), termsCid)
  let e = os2ip(h.subarray(0, 16)) | (1n << 127n) | 1n
  while (!checkPrimeSync(e, { checks: PRIME_CHECKS })) e += 2n
  return e
}

/** d_T = e_T^-1 mod λ(n); refuses when gcd(e_T, λ(n)) != 1 */
export function privateExponent (eT: bigint, p: bigint, q: bigint): bigint {
  if (typeof eT !== 'bigint' || eT < 3n || (eT & 1n) === 0n) throw new ExponentError('exponent must be odd and >= 3')
  if (typeof p !== 'bigint' || typeof q !== 'bigint' || p <= 2n || q <= 2n || p === q) {
    throw new RsaKeyError('invalid RSA factors')
  }
  const lambda = carmichael(p, q)
  if (gcd(eT, lambda) !== 1n) throw new ExponentError('exponent is not coprime to lambda(n)')
  return modInverse(eT, lambda)
}

/**
 * The escrow key for one set of terms: JWK (n, e_T, d_T, p, q, dp, dq, qi) imported
 * as a KeyObject for rawPrivate. Caching per terms is the caller's business.
 */
export function escrowKeyForTerms (key: RsaFactors, eT: bigint): KeyObject {
  const { n, p, q } = key
  if (typeof n !== 'bigint' || p * q !== n) throw new RsaKeyError('n is not p·q')
  const d = privateExponent(eT, p, q)
  return importRsaPrivateKey({ n, e: eT, d, p, q })
}
