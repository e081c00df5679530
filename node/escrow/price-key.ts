// The escrow's RSA key bound to the price of a sale: for the terms a request names (by
// their binary CID), the exponent pair (e_T, d_T) of docs/protocol.md (Price binding), and z = b^d_T mod n
// through OpenSSL. Kept apart from the rest of the escrow, with only the crypto it needs,
// because each unblind worker thread (unblind-worker.ts) loads it into a heap of its own.
import { byteLength, i2osp, i2ospMod, os2ip } from '../../device/crypto/bytes.ts'
import { OutOfRangeError } from '../../device/crypto/errors.ts'
import { escrowKeyForTerms, priceExponent } from '../../device/crypto/price.ts'
import { rawPrivate, rsaPrivateParams } from '../../device/crypto/rsa.ts'
import type { RsaPrivateParams } from '../../device/crypto/rsa.ts'
import type { KeyObject } from 'node:crypto'

/** Imported keys per terms; bounded so a flood of distinct offers cannot grow it without end */
const MAX_CACHED_TERMS = 1024

export class PriceBoundKey {
  readonly n: bigint
  readonly modulus: Uint8Array
  private readonly params: RsaPrivateParams
  private readonly byTerms = new Map<string, KeyObject>()

  constructor (privateKey: KeyObject) {
    this.params = rsaPrivateParams(privateKey)
    this.n = this.params.n
    this.modulus = i2osp(this.n, byteLength(this.n))
  }

  /** The key (n, e_T, d_T) for the terms of this CID (binary); refuses terms whose e_T shares a factor with λ(n) */
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

  /** z = b^d_T mod n for the terms of this CID (binary), I2OSP in the length of n; b must be in [1, n − 1] */
  unblindForTermsCid (b: Uint8Array, id: Uint8Array): Uint8Array {
    const value = os2ip(b)
    if (value < 1n || value >= this.n) throw new OutOfRangeError('b not in [1, n - 1]')
    return i2ospMod(rawPrivate(this.keyForTermsCid(id), value, this.n), this.n)
  }
}
