// The escrow's side of the blind release: from the terms a paid request names, the
// price-bound private exponent d_T, and z = b^d_T mod n through OpenSSL. EscrowKey
// does it in the calling thread; UnblindPool (pool.ts) in worker threads.
import { byteLength, escrowKeyForTerms, i2osp, i2ospMod, os2ip, priceExponent, rawPrivate, rsaPrivateParams, OutOfRangeError } from '../../device/crypto/index.ts'
import { termsCid } from '../../device/objects/market.ts'
import type { RsaPrivateParams } from '../../device/crypto/index.ts'
import type { Terms } from '../../device/objects/market.ts'
import type { KeyObject } from 'node:crypto'
import type { CID } from 'multiformats/cid'

/** Imported keys per terms; bounded so a flood of distinct offers cannot grow it without end */
const MAX_CACHED_TERMS = 1024

/** What the escrow needs of its RSA key: the public modulus, and z = b^d_T for given terms */
export interface Unblinder {
  readonly n: bigint
  readonly modulus: Uint8Array
  /** `id` is termsCid(terms) when the caller has it already */
  unblind: (b: Uint8Array, terms: Terms, id?: CID) => Uint8Array | Promise<Uint8Array>
}

export class EscrowKey implements Unblinder {
  readonly n: bigint
  readonly modulus: Uint8Array
  private readonly params: RsaPrivateParams
  private readonly byTerms = new Map<string, KeyObject>()

  constructor (privateKey: KeyObject) {
    this.params = rsaPrivateParams(privateKey)
    this.n = this.params.n
    this.modulus = i2osp(this.n, byteLength(this.n))
  }

  /** The key (n, e_T, d_T) for these terms; refuses terms whose e_T shares a factor with λ(n) */
  keyFor (terms: Terms, id: CID = termsCid(terms)): KeyObject {
    return this.keyForTermsCid(id.bytes)
  }

  /** The key for the terms of this CID (binary) */
  keyForTermsCid (id: Uint8Array): KeyObject {
    const cacheKey = Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('base64')
    let key = this.byTerms.get(cacheKey)
    if (key === undefined) {
      key = escrowKeyForTerms(this.params, priceExponent(id))
      if (this.byTerms.size >= MAX_CACHED_TERMS) this.byTerms.delete(this.byTerms.keys().next().value!)
      this.byTerms.set(cacheKey, key)
    }
    return key
  }

  /** z = b^d_T mod n, I2OSP in the length of n; b must be in [1, n − 1] */
  unblind (b: Uint8Array, terms: Terms, id?: CID): Uint8Array {
    return this.unblindForTermsCid(b, (id ?? termsCid(terms)).bytes)
  }

  /** the same, for the terms of this CID (binary) */
  unblindForTermsCid (b: Uint8Array, id: Uint8Array): Uint8Array {
    const value = os2ip(b)
    if (value < 1n || value >= this.n) throw new OutOfRangeError('b not in [1, n - 1]')
    return i2ospMod(rawPrivate(this.keyForTermsCid(id), value, this.n), this.n)
  }
}
