// One buy from start to end: download, payment and play side by side, undone on failure.
import { DeviceLockedError, NotEnrolledError } from '../../device/errors.ts'
import { encodeObject } from '../../device/objects/codec.ts'
import { signedId } from '../../device/objects/signed.ts'
import { ByteBudget } from './byte-budget.ts'
import { DownloadGate } from './download-gate.ts'
import { DownloadSession } from './download-session.ts'
import { reasonOf } from './errors.ts'
import { assertSellerSigned } from './offer-search.ts'
import { Payment } from './payment.ts'
import { StoredOrder } from './stored-order.ts'
import type { DownloadOutcome } from './download-session.ts'
import type { Playback } from './playback.ts'
import type { BuyOptions, BuyProgress, BuyResult, BuyTimings, BuyerInit } from './types.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'

export interface PurchaseInit {
  buyer: BuyerInit
  offer: Signed<Offer>
  options: BuyOptions
  playback: Playback
  /** the bytes of chunks this purchase may hold in flight */
  inflightBytes: number
  /** when the buy began (its offer looked up first) */
  started: number
  /** seeds the ciphertext once bought, when asked */
  seed: (offer: Signed<Offer>) => Promise<void>
}

/** A buy of its own: the download stops with it, and a failed payment leaves what was fetched for next time */
export class Purchase {
  private readonly init: PurchaseInit
  private readonly started: number
  private readonly timings: BuyTimings = { download: 0, licence: 0, keyRelease: 0, shares: [], rebuild: 0, play: 0, total: 0 }
  private readonly progress: (p: BuyProgress) => void
  private readonly budget: ByteBudget
  private readonly content: string
  // the download stops with the buy: a failed payment leaves what it fetched, for next time
  private readonly stop = new AbortController()
  private readonly signal: AbortSignal

  constructor (init: PurchaseInit) {
    this.init = init
    this.started = init.started
    this.progress = init.options.onProgress ?? (() => {})
    this.budget = new ByteBudget(init.inflightBytes)
    this.content = init.offer.body.terms.content.toString()
    const given = init.options.signal
    this.signal = given == null ? this.stop.signal : AbortSignal.any([this.stop.signal, given])
  }

  /**
   * The whole purchase; every step resumes where it stopped when run again. The steps
   * overlap: payment starts once a provider has served a chunk that verifies, and the
   * device decrypts each chunk as soon as it and all before it are on disk.
   */
  async run (): Promise<BuyResult> {
    const { buyer, offer, options } = this.init
    await this.checkReady()
    // the device draws the blinding factors while the download starts and the licence is fetched
    buyer.device().prepareShares({ offer: encodeObject(offer) }).catch((err: unknown) => { buyer.log('blinding factors not drawn ahead: %s', reasonOf(err)) })
    const order = new StoredOrder()
    const gate = new DownloadGate()
    const downloading = this.download(order, gate)
    downloading.catch(() => {}) // awaited below, after the payment
    const payment = new Payment({ buyer, offer, progress: this.progress, timings: this.timings, signal: this.signal, gate, order, downloading })
    let playing: Promise<{ bytes: number }> | undefined
    try {
      // the purchase opens on the manifest; its price is reserved before any chunk comes
      await Promise.race([gate.manifest, downloading])
      const paid = await payment.pay()
      if (options.output != null) {
        playing = this.init.playback.follow(this.content, options.output, order, this.progress)
        playing.catch(() => {}) // awaited once the download is done
      }
      const downloaded = await downloading
      return await this.finish(paid, downloaded, playing)
    } catch (err) {
      this.stop.abort()
      await downloading.catch(() => {})
      await payment.releaseUnanswered()
      // a play waiting for chunks that will not come ends now, its partial output removed
      if (playing != null) await this.init.playback.stop(this.content)
      await playing?.catch(() => {})
      throw err
    }
  }

  /** The offer is its seller's, and the device can buy: unlocked and enrolled */
  private async checkReady (): Promise<void> {
    await assertSellerSigned(this.init.offer)
    const status = await this.init.buyer.device().status()
    if (!status.unlocked) throw new DeviceLockedError('unlock the sealed device first (keyfair device unlock)')
    if (!status.enrolled) throw new NotEnrolledError('enroll the sealed device with an agency first (keyfair device enroll)')
  }

  private async download (order: StoredOrder, gate: DownloadGate): Promise<DownloadOutcome> {
    const { buyer, offer, options } = this.init
    const session = new DownloadSession({ buyer, offer, progress: this.progress, from: options.from, signal: this.signal, order, gate, budget: this.budget })
    const outcome = await session.run()
    this.timings.download = performance.now() - this.started
    return outcome
  }

  /** The play awaited, the paid mark cleared, seeding begun if asked: the buy's result */
  private async finish (paid: Awaited<ReturnType<Payment['pay']>>, downloaded: DownloadOutcome, playing?: Promise<{ bytes: number }>): Promise<BuyResult> {
    const { buyer, offer, options } = this.init
    const done = performance.now()
    const bytes = (await playing)?.bytes
    if (playing != null) this.timings.play = performance.now() - done
    await buyer.market.content.setPaidPurchase(this.content, undefined)
    if (options.seed === true) await this.init.seed(offer)
    this.timings.total = performance.now() - this.started
    const { price, currency } = offer.body.terms
    const paidTotal = price * paid.escrows.filter(e => e.outcome === 'accepted').length
    return {
      ...downloaded,
      purchase: paid.purchase,
      offer: signedId(offer).toString(),
      content: this.content,
      bound: paid.bound,
      escrows: paid.escrows,
      price,
      currency,
      paid: paidTotal,
      output: options.output,
      bytes,
      seeding: options.seed === true,
      inflightBudgetBytes: this.budget.capacity,
      peakInflightBytes: this.budget.peak,
      timings: this.timings
    }
  }
}
