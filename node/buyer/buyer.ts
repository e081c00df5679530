// The buyer's component (docs/protocol.md, Roles): each public call handed to the part that does it.
import { signedId } from '../../device/objects/signed.ts'
import { DEFAULT_INFLIGHT_BYTES } from '../config.ts'
import { keywordsOf } from '../discovery/keywords.ts'
import { OfferLookup } from './offer-lookup.ts'
import { OfferSearch } from './offer-search.ts'
import { Playback } from './playback.ts'
import { Purchase } from './purchase.ts'
import { LicenceRenewal } from './renewal.ts'
import { Settlement } from './settlement.ts'
import type { SearchOptions } from './offer-search.ts'
import type { RenewalResult } from './renewal.ts'
import type { BuyOptions, BuyResult, BuyerInit, OfferListing, PlayProgress, Quote, SettlementResult } from './types.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { AbortOptions } from '@libp2p/interface'

export { BuyError } from './errors.ts'
export type { BuyerInit, BuyOptions, BuyProgress, BuyResult, BuyTimings, OfferListing, PlayProgress, Quote, SettlementResult, ShareTimings } from './types.ts'

export class Buyer {
  private readonly init: BuyerInit
  private readonly renewal: LicenceRenewal
  private readonly lookup: OfferLookup
  private readonly offers: OfferSearch
  private readonly playback: Playback
  private readonly settlement: Settlement

  constructor (init: BuyerInit) {
    this.init = init
    this.renewal = new LicenceRenewal({ streams: init.streams, device: init.device, log: init.log })
    this.lookup = new OfferLookup({ market: init.market, discovery: init.discovery, streams: init.streams, log: init.log })
    this.offers = new OfferSearch(init, this.lookup)
    this.playback = new Playback(init, this.renewal)
    this.settlement = new Settlement(init)
  }

  /** Renews a licence past (or before) the end of its offline lifetime, through an escrow of its offer */
  async renew (content: string, options: AbortOptions = {}): Promise<RenewalResult> {
    return this.renewal.renew(content, options)
  }

  /** Offers under these words, from every provider the DHT names for them */
  async search (words: string[], options: SearchOptions = {}): Promise<OfferListing[]> {
    return this.offers.search(words, options)
  }

  /** What buying the offer costs: its price at each of the t escrows it pays, and in all */
  async quote (ref: string, options: AbortOptions = {}): Promise<Quote> {
    return this.offers.quote(ref, options)
  }

  /**
   * Buys the offer, named by its id or by its content's id (found through the DHT when not
   * known here); every step resumes where it stopped when run again
   */
  async buy (ref: string, options: BuyOptions): Promise<BuyResult> {
    const started = performance.now()
    const offer = await this.lookup.find(ref, { signal: options.signal })
    const inflightBytes = options.inflightBytes ?? (await this.init.inflightBytes?.()) ?? DEFAULT_INFLIGHT_BYTES
    const purchase = new Purchase({ buyer: this.init, offer, options, playback: this.playback, inflightBytes, started, seed: async o => this.seed(o) })
    return purchase.run()
  }

  async play (content: string, output: string, onProgress?: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    return this.playback.play(content, output, onProgress)
  }

  /** Confirms a purchase: the device's receipt to every escrow that answered */
  async confirm (purchase: string): Promise<SettlementResult> {
    return this.settlement.confirm(purchase)
  }

  /** Disputes a purchase: the device opens its shares to every escrow that answered */
  async dispute (purchase: string, chunk?: { index: number }): Promise<SettlementResult> {
    return this.settlement.dispute(purchase, chunk)
  }

  /** Serves the ciphertext to other buyers and announces it under the offer's words */
  async seed (offer: Signed<Offer>): Promise<void> {
    const cid = offer.body.terms.content.toString()
    await this.init.market.content.addOffer(offer)
    await this.init.market.content.setServing(cid, true)
    await this.init.discovery.announce(cid, keywordsOf(offer.body.title, ...offer.body.tags), { offers: [signedId(offer).toString()] })
  }
}
