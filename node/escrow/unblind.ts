// The escrow's side of the blind release: from the terms a paid request names, the
// price-bound private exponent d_T, and z = b^d_T mod n through OpenSSL. EscrowKey
// does it in the calling thread; UnblindPool (pool.ts) in worker threads.
import { termsCid } from '../../device/objects/market.ts'
import { PriceBoundKey } from './price-key.ts'
import type { Terms } from '../../device/objects/market.ts'
import type { KeyObject } from 'node:crypto'
import type { CID } from 'multiformats/cid'

/** What the escrow needs of its RSA key: the public modulus, and z = b^d_T for given terms */
export interface Unblinder {
  readonly n: bigint
  readonly modulus: Uint8Array
  /** private-key operations done (z = b^d_T), counted when they start */
  readonly operations?: number
  /** `id` is termsCid(terms) when the caller has it already */
  unblind: (b: Uint8Array, terms: Terms, id?: CID) => Uint8Array | Promise<Uint8Array>
}

export class EscrowKey extends PriceBoundKey implements Unblinder {
  /** private-key operations done since start */
  operations = 0

  /** The key (n, e_T, d_T) for these terms; refuses terms whose e_T shares a factor with λ(n) */
  keyFor (terms: Terms, id: CID = termsCid(terms)): KeyObject {
    return this.keyForTermsCid(id.bytes)
  }

  /** z = b^d_T mod n, I2OSP in the length of n; b must be in [1, n − 1] */
  unblind (b: Uint8Array, terms: Terms, id?: CID): Uint8Array {
    this.operations++
    return this.unblindForTermsCid(b, (id ?? termsCid(terms)).bytes)
  }
}
