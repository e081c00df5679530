// RSA keys as integers <-> node:crypto KeyObjects (via JWK), and the raw RSA operations.
// Private ops go through OpenSSL (privateDecrypt, RSA_NO_PADDING) on a key imported once;
// public ops with a 128-bit e_T go through OpenSSL too up to 3072 bits (4–5× faster than BigInt
// even with the key import) and fall back to BigInt above, where OpenSSL refuses such an e.
import { constants, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt } from 'node:crypto'
import type { JsonWebKey, KeyObject } from 'node:crypto'
import { base64urlToBigint, bigintToBase64url, bitLength, i2ospMod, os2ip } from './bytes.ts'
import { gcd, lcm, mod, modInverse, modPow } from './bigint.ts'
import { OutOfRangeError, RsaKeyError } from './errors.ts'

export interface RsaPublicParams {
  n: bigint
  e: bigint
}

export interface RsaPrivateParams extends RsaPublicParams {
  d: bigint
  p: bigint
  q: bigint
}

/** The factors of an escrow key: all a price-bound key needs */
export interface RsaFactors {
  n: bigint
  p: bigint
  q: bigint
}

/** λ(n) = lcm(p − 1, q − 1) */
export function carmichael (p: bigint, q: bigint): bigint {
  return lcm(p - 1n, q - 1n)
}

/** Checks n = p·q and e·d ≡ 1 (mod λ(n)), which also covers a d reduced mod φ(n) */
export function checkPrivateParams (params: RsaPrivateParams): void {
  const { n, e, d, p, q } = params
  for (const v of [n, e, d, p, q]) {
    if (typeof v !== 'bigint' || v <= 1n) throw new RsaKeyError('RSA parameters must be integers > 1')
  }
  if (p * q !== n || p === q) throw new RsaKeyError('n is not p·q')
  const lambda = carmichael(p, q)
  if (gcd(e, lambda) !== 1n || mod(e * d, lambda) !== 1n) throw new RsaKeyError('e and d do not match')
}

export function rsaPublicJwk ({ n, e }: RsaPublicParams): JsonWebKey {
  return { kty: 'RSA', n: bigintToBase64url(n), e: bigintToBase64url(e) }
}

export function rsaPrivateJwk (params: RsaPrivateParams): JsonWebKey {
  const { n, e, d, p, q } = params
  return {
    kty: 'RSA',
    n: bigintToBase64url(n),
    e: bigintToBase64url(e),
    d: bigintToBase64url(d),
    p: bigintToBase64url(p),
    q: bigintToBase64url(q),
    dp: bigintToBase64url(d % (p - 1n)),
    dq: bigintToBase64url(d % (q - 1n)),
    qi: bigintToBase64url(modInverse(q, p))
  }
}

/** Imports a private key once; keep the KeyObject (importing per call halves throughput) */
export function importRsaPrivateKey (params: RsaPrivateParams): KeyObject {
  checkPrivateParams(params)
  try {
    return createPrivateKey({ key: rsaPrivateJwk(params), format: 'jwk' })
  } catch {
    throw new RsaKeyError('RSA private key import failed')
  }
}

export function importRsaPublicKey (params: RsaPublicParams): KeyObject {
  if (params.n <= 1n || params.e <= 1n) throw new RsaKeyError('RSA parameters must be integers > 1')
  try {
    return createPublicKey({ key: rsaPublicJwk(params), format: 'jwk' })
  } catch {
    throw new RsaKeyError('RSA public key import failed')
  }
}

function checkRsaKeyObject (key: KeyObject): void {
  if (key == null || typeof key !== 'object' || key.asymmetricKeyType !== 'rsa') {
    throw new RsaKeyError('expected an RSA KeyObject')
  }
}

export function rsaPublicParams (key: KeyObject): RsaPublicParams {
  checkRsaKeyObject(key)
  const jwk = key.export({ format: 'jwk' })
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new RsaKeyError('not an RSA key')
  return { n: base64urlToBigint(jwk.n), e: base64urlToBigint(jwk.e) }
}

export function rsaPrivateParams (key: KeyObject): RsaPrivateParams {
  checkRsaKeyObject(key)
  if (key.type !== 'private') throw new RsaKeyError('expected a private key')
  const jwk = key.export({ format: 'jwk' })
  const { n, e, d, p, q } = jwk
  if (typeof n !== 'string' || typeof e !== 'string' || typeof d !== 'string' ||
    typeof p !== 'string' || typeof q !== 'string') {
    throw new RsaKeyError('RSA private key lacks its factors')
  }
  return {
    n: base64urlToBigint(n),
    e: base64urlToBigint(e),
    d: base64urlToBigint(d),
    p: base64urlToBigint(p),
    q: base64urlToBigint(q)
  }
}

/** OpenSSL refuses public operations with a large e above this modulus size */
export const OPENSSL_LARGE_E_MAX_BITS = 3072

/** An (n, e) public key imported once for OpenSSL's raw operation */
export interface RawPublicKey {
  n: bigint
  e: bigint
  key: KeyObject
}

/**
 * The (n, e) key imported for OpenSSL, or undefined where OpenSSL will not take it (a
 * 128-bit e above 3072 bits, an even or small modulus): rawPublic then computes in
 * BigInt. Importing costs ~0.3 ms at 3072 bits, so callers that use a key often keep it.
 */
export function rawPublicKey (n: bigint, e: bigint): RawPublicKey | undefined {
  const bits = bitLength(n)
  if (bits < 1024 || bits > OPENSSL_LARGE_E_MAX_BITS || (n & 1n) !== 1n || e <= 1n || e >= n) return undefined
  try {
    return { n, e, key: createPublicKey({ key: rsaPublicJwk({ n, e }), format: 'jwk' }) }
  } catch {
    return undefined
  }
}

/**
 * x^e mod n for x in [0, n − 1] (public exponent only: not constant-time). `imported`,
 * when given, is rawPublicKey(n, e) kept by the caller.
 */
export function rawPublic (x: bigint, e: bigint, n: bigint, imported: RawPublicKey | undefined = rawPublicKey(n, e)): bigint {
  if (x < 0n || x >= n) throw new OutOfRangeError('input not in [0, n - 1]')
  if (imported != null) {
    if (imported.n !== n || imported.e !== e) throw new RsaKeyError('the key is not the (n, e) of this operation')
    try {
      return os2ip(publicEncrypt({ key: imported.key, padding: constants.RSA_NO_PADDING }, i2ospMod(x, n)))
    } catch {
      // an exponent or modulus OpenSSL will not take: the BigInt path computes the same value
    }
  }
  return rawPublicBigInt(x, e, n)
}

/** x^e mod n in BigInt: the path above 3072 bits, and the reference the OpenSSL path is tested against */
export function rawPublicBigInt (x: bigint, e: bigint, n: bigint): bigint {
  if (x < 0n || x >= n) throw new OutOfRangeError('input not in [0, n - 1]')
  return modPow(x, e, n)
}

/**
 * The escrow's raw private operation b^d mod n through OpenSSL, for b in [1, n − 1].
 * `key` is the imported private key whose modulus is n (for price binding: the key
 * built by escrowKeyForTerms).
 */
export function rawPrivate (key: KeyObject, b: bigint, n: bigint): bigint {
  checkRsaKeyObject(key)
  if (key.type !== 'private') throw new RsaKeyError('expected a private key')
  if (key.asymmetricKeyDetails?.modulusLength !== bitLength(n)) throw new RsaKeyError('key does not match the modulus')
  if (typeof b !== 'bigint' || b < 1n || b >= n) throw new OutOfRangeError('input not in [1, n - 1]')
  let out: Buffer
  try {
    out = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, i2ospMod(b, n))
  } catch {
    throw new RsaKeyError('raw RSA private operation failed')
  }
  const z = os2ip(out)
  out.fill(0)
  return z
}
