// Paying for a purchase beside its download: licence, purchase opened, escrows reserved, shares bought.
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeObject } from '../../device/objects/codec.ts'
import { signedId } from '../../device/objects/signed.ts'
import { RemoteError } from '../../protocols/errors.ts'
import { requestLicence } from '../../protocols/market/license.ts'
import { LicenceRefusedError, SellerOfflineError, reasonOf } from './errors.ts'
import { EscrowShares, checkEscrow } from './escrow-shares.ts'
import { withRedial } from './redial.ts'
import { cancelReservations, reserveEscrows } from './reservations.ts'
import type { DownloadGate } from './download-gate.ts'
import type { StoredOrder } from './stored-order.ts'
import type { BuyProgress, BuyResult, BuyTimings, BuyerInit } from './types.ts'
import type { PurchaseInfo } from '../../device/interface.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'

const LICENCE_TIMEOUT_MS = 10_000

export interface Paid { purchase: string, bound: boolean, escrows: BuyResult['escrows'] }

export interface PaymentInit {
  buyer: BuyerInit
  offer: Signed<Offer>
  progress: (p: BuyProgress) => void
  timings: BuyTimings
  signal: AbortSignal
  /** opened once the price is reserved: no chunk is asked for before */
  gate: DownloadGate
  order: StoredOrder
  downloading: Promise<unknown>
}

/** T escrows are reserved before any chunk comes; shares are bought once a provider served a chunk that verifies */
export class Payment {
  private readonly init: PaymentInit
  private readonly checks = new Map<number, Promise<void>>()
  /** the reservations of this payment: released when it fails before their escrows answered */
  private purchase?: string
  private held: number[] = []

  constructor (init: PaymentInit) {
    this.init = init
  }

  /**
   * Pays for the offer, unless a paid buy of it is still unfinished on this node: an open
   * purchase (payment interrupted) is continued, a complete one is reused, never paid twice.
   */
  async pay (): Promise<Paid> {
    const { buyer, offer, gate } = this.init
    const device = buyer.device()
    // only this offer's purchases cross the device's pipe, however many the device holds
    const purchases = await device.purchases({ offer: signedId(offer).toString() })
    const paid = await buyer.market.content.paidPurchase(offer.body.terms.content.toString())
    const unfinished = purchases.find(p => p.purchase === paid && p.state === 'complete')
    if (unfinished != null) {
      gate.open()
      const escrows = unfinished.accepted.map(j => ({ j, peer: offer.body.terms.escrows[j - 1]!.peer, outcome: 'accepted' }))
      return { purchase: unfinished.purchase, bound: unfinished.bound, escrows }
    }
    const open = purchases.find(p => p.state === 'open')
    this.checkFirstEscrows(open)
    const { purchase, bound } = await this.openPurchase(open)
    const refused = await this.reserve(purchase, open)
    gate.open()
    const escrows = await this.buyShares(purchase, refused)
    return { purchase, bound, escrows }
  }

  /** After a failed buy: the reservations no escrow answered go back to the buyer at once */
  async releaseUnanswered (): Promise<void> {
    const { purchase, held } = this
    if (purchase == null || held.length === 0) return
    const { buyer, offer } = this.init
    const accepted = await buyer.device().purchase({ purchase }).then(p => p.accepted, () => [] as number[])
    const unanswered = held.filter(j => !accepted.includes(j))
    await cancelReservations({ streams: buyer.streams, log: buyer.log, offer, purchase }, unanswered)
  }

  /** The escrows asked first are checked while the licence is fetched and the purchase opened */
  private checkFirstEscrows (open: PurchaseInfo | undefined): void {
    const { terms } = this.init.offer.body
    const done = new Set([...(open?.accepted ?? []), ...(open?.faulty ?? [])])
    for (const [i] of terms.escrows.entries()) {
      if (this.checks.size + (open?.accepted.length ?? 0) >= terms.t) break
      if (done.has(i + 1)) continue
      const check = checkEscrow(this.init.buyer, this.init.offer, i + 1, this.init.signal)
      check.catch(() => {}) // its lane reports the failure
      this.checks.set(i + 1, check)
    }
  }

  /** The open purchase continued, or a new one begun in the device with the seller's licence (if any) */
  private async openPurchase (open: PurchaseInfo | undefined): Promise<{ purchase: string, bound: boolean }> {
    if (open != null) return { purchase: open.purchase, bound: open.bound }
    const { buyer, offer, progress, timings } = this.init
    const began = performance.now()
    const licence = await this.fetchLicence()
    const bound = licence != null
    progress({ phase: 'licence', bound })
    const manifest = (await buyer.market.content.manifestBytes(offer.body.terms.content.toString()))!
    const info = await buyer.device().beginPurchase({ offer: encodeObject(offer), manifest, licence, buyer: buyer.peerId })
    timings.licence = performance.now() - began
    return { purchase: info.purchase, bound }
  }

  /** T escrows hold the price before any is asked for its share, and before any chunk comes; those that refused */
  private async reserve (purchase: string, open: PurchaseInfo | undefined): Promise<Array<{ j: number, peer: string }>> {
    const { buyer, offer, progress, signal } = this.init
    const { terms } = offer.body
    const accepted = open?.accepted ?? []
    const done = new Set([...accepted, ...(open?.faulty ?? [])])
    const certificates = await buyer.device().certificates()
    this.purchase = purchase
    const { held, refused } = await reserveEscrows({
      streams: buyer.streams,
      log: buyer.log,
      offer,
      purchase,
      device: certificates.signing,
      candidates: terms.escrows.map((_, i) => i + 1).filter(j => !done.has(j)),
      need: Math.max(0, terms.t - accepted.length),
      check: async j => {
        let check = this.checks.get(j)
        if (check == null) this.checks.set(j, check = checkEscrow(buyer, offer, j, signal))
        return check
      },
      progress,
      signal
    })
    this.held = held
    return refused
  }

  /** Once a provider proved it serves this content (one chunk that verifies): t shares, the key rebuilt */
  private async buyShares (purchase: string, refused: Array<{ j: number, peer: string }>): Promise<BuyResult['escrows']> {
    const { buyer, offer, progress, timings, signal, order, downloading } = this.init
    const device = buyer.device()
    await Promise.race([order.firstStored, downloading])
    const began = performance.now()
    const lanes = new EscrowShares({ buyer, offer, progress, signal })
    const shares = await lanes.buy(purchase, this.checks, timings.shares, this.held, new Set(refused.map(r => r.j)))
    // those that held no reservation were not asked: unavailable to this purchase
    const escrows = [...shares, ...refused.filter(r => !shares.some(e => e.j === r.j)).map(r => ({ j: r.j, peer: r.peer, outcome: 'unavailable' }))].sort((a, b) => a.j - b.j)
    const sharesBought = performance.now()
    await device.completePurchase({ purchase })
    timings.rebuild = performance.now() - sharesBought
    // until the buy finishes, running it again reuses this purchase
    await buyer.market.content.setPaidPurchase(offer.body.terms.content.toString(), purchase)
    timings.keyRelease = performance.now() - began
    return escrows
  }

  /** The seller's licence for this device; none for an open offer whose seller is away */
  private async fetchLicence (): Promise<Uint8Array | undefined> {
    const { buyer, offer } = this.init
    try {
      const certs = await buyer.device().certificates()
      // an open offer sells without its seller: one try, as the seller is often offline
      const ask = async (signal: AbortSignal): Promise<unknown> => requestLicence({ connectionManager: buyer.streams }, peerIdFromString(offer.body.terms.seller), {
        offer: signedId(offer), signing: certs.signing, encryption: certs.encryption
      }, { signal })
      const signal = AbortSignal.timeout(LICENCE_TIMEOUT_MS)
      const licence = offer.body.shares.length === 0 ? await withRedial(ask, { signal, log: buyer.log, what: 'the seller' }) : await ask(signal)
      return encodeObject(licence)
    } catch (err: unknown) {
      if (offer.body.shares.length === 0) {
        // the seller answered and refused (a revoked device, say): its reason, not "offline"
        if (err instanceof RemoteError) throw new LicenceRefusedError(String(err.message), err.code)
        throw new SellerOfflineError(`the seller is unreachable and sells device-bound licences only (${reasonOf(err)})`)
      }
      buyer.log('no licence from the seller (%s): buying the open offer', reasonOf(err))
      return undefined
    }
  }
}
