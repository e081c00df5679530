// The blinding factors r_j of unblind requests: drawn ahead of a purchase where the node
// says one is coming, or when the request is made, and their inverses kept for the answer.
import { logger } from '@libp2p/logger'
import { blindingFactor, os2ip, rawPublicKey } from '../crypto/index.ts'
import { decodeObject } from '../objects/codec.ts'
import { parseSignedOffer } from '../objects/market.ts'
import { signedId } from '../objects/signed.ts'
import type { BlindingFactor, RawPublicKey } from '../crypto/index.ts'
import type { Offer } from '../objects/market.ts'
import type { Signed } from '../objects/signed.ts'
import type { DeviceSession } from './session.ts'
import type { ShareState } from './purchase-records.ts'

/** blinding factors drawn ahead of requests, at most (a few purchases' worth) */
const MAX_PREPARED_FACTORS = 64
/** imported (n_j, e_T) keys kept, at most */
const MAX_PUBLIC_KEYS = 64

export class Blinding {
  private readonly session: DeviceSession
  private readonly exponentOf: (offer: Offer) => bigint
  private readonly log = logger('keyfair:device:blinding')
  /** r_j^-1 of shares whose requests are out, drawn with r_j */
  private inverses = new WeakMap<ShareState, bigint>()
  /** blinding factors drawn before a purchase asks, by offer id and share index; each blinds one request */
  private readonly prepared = new Map<string, BlindingFactor>()
  /** the (n_j, e_T) keys of recent purchases, imported for OpenSSL once (null: BigInt only) */
  private readonly publicKeys = new Map<string, RawPublicKey | null>()

  constructor (session: DeviceSession, exponentOf: (offer: Offer) => bigint) {
    this.session = session
    this.exponentOf = exponentOf
    session.onForget(() => {
      this.inverses = new WeakMap()
      this.prepared.clear()
    })
  }

  /**
   * Draws the blinding factors of an offer's first t shares (the escrows a purchase asks
   * first) ahead of the purchase, one per turn of the event loop so that other calls are
   * answered in between: the device does this work while the node fetches the licence,
   * not while the escrows wait for requests. Nothing is sealed: a factor that is lost was
   * never used.
   */
  async prepareShares (args: { offer: Uint8Array }): Promise<{ preparing: number }> {
    this.session.unlocked()
    const offer = parseSignedOffer(decodeObject(args.offer))
    const offerId = signedId(offer).toString()
    const { terms } = offer.body
    const js = Array.from({ length: Math.min(terms.t, terms.escrows.length) }, (_, i) => i + 1)
      .filter(j => !this.prepared.has(`${offerId}/${j}`))
    const draw = (i: number): void => {
      const j = js[i]
      if (j == null || !this.session.isUnlocked) return
      if (!this.prepareOne(offer, offerId, j)) return
      setImmediate(draw, i + 1)
    }
    setImmediate(draw, 0)
    return { preparing: js.length }
  }

  /** A factor for share j of a purchase's offer: one drawn ahead, or a fresh one */
  factorFor (offerId: string, j: number, n: bigint, eT: bigint): BlindingFactor {
    return this.takePrepared(offerId, j, n, eT) ?? blindingFactor(eT, n, undefined, this.publicKeyOf(n, eT))
  }

  /** Keeps r_j^-1 for the answer to this share's request */
  remember (share: ShareState, factor: BlindingFactor): void {
    this.inverses.set(share, factor.rInv)
  }

  /** r_j^-1 of the share, if still held */
  inverseOf (share: ShareState): bigint | undefined {
    return this.inverses.get(share)
  }

  /** The share's answer is unblinded: its r_j^-1 is not needed again */
  dropInverse (share: ShareState): void {
    this.inverses.delete(share)
  }

  /** The (n, e_T) key imported for OpenSSL, kept for the purchase's next operations */
  publicKeyOf (n: bigint, eT: bigint): RawPublicKey | undefined {
    const id = `${n.toString(36)}/${eT.toString(36)}`
    let key = this.publicKeys.get(id)
    if (key === undefined) {
      key = rawPublicKey(n, eT) ?? null
      if (this.publicKeys.size >= MAX_PUBLIC_KEYS) this.publicKeys.delete(this.publicKeys.keys().next().value!)
      this.publicKeys.set(id, key)
    }
    return key ?? undefined
  }

  /** Draws share j's factor unless one is held; false when the offer cannot be blinded */
  private prepareOne (offer: Signed<Offer>, offerId: string, j: number): boolean {
    try {
      const eT = this.exponentOf(offer.body)
      const n = os2ip(offer.body.terms.escrows[j - 1]!.n)
      const id = `${offerId}/${j}`
      if (this.prepared.has(id)) return true
      const factor = blindingFactor(eT, n, undefined, this.publicKeyOf(n, eT))
      if (this.prepared.size >= MAX_PREPARED_FACTORS) this.prepared.delete(this.prepared.keys().next().value!)
      this.prepared.set(id, factor)
      return true
    } catch (err: any) {
      // a request draws its own factor, and reports what is wrong with the offer
      this.log('no blinding factor for share %d of %s: %s', j, offerId, err.code ?? err.message)
      return false
    }
  }

  /** A factor drawn ahead for this share of this offer, if any: removed, so it blinds one request only */
  private takePrepared (offerId: string, j: number, n: bigint, eT: bigint): BlindingFactor | undefined {
    const id = `${offerId}/${j}`
    const factor = this.prepared.get(id)
    if (factor == null) return undefined
    this.prepared.delete(id)
    return factor.n === n && factor.eT === eT ? factor : undefined
  }
}
