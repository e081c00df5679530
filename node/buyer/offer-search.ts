// Finding what to buy: a keyword search over the DHT's providers, and an offer's quote.
import { signedId, verifyPeerSigned } from '../../device/objects/signed.ts'
import { SignatureError } from '../../device/objects/errors.ts'
import { requestOffers } from '../../protocols/market/offer.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { keywordsOf } from '../discovery/keywords.ts'
import { reasonOf } from './errors.ts'
import { providerAddress } from './offer-lookup.ts'
import type { OfferLookup } from './offer-lookup.ts'
import type { BuyerInit, OfferListing, Quote } from './types.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface SearchOptions { limit?: number, timeoutMs?: number, signal?: AbortSignal }

/** An offer signed by anyone but its seller is refused before anything is paid */
export async function assertSellerSigned (offer: Signed<Offer>): Promise<void> {
  if ((await verifyPeerSigned(offer, 'offer')) !== offer.body.terms.seller) throw new SignatureError('the offer is not signed by its seller')
}

export class OfferSearch {
  private readonly init: BuyerInit
  private readonly lookup: OfferLookup

  constructor (init: BuyerInit, lookup: OfferLookup) {
    this.init = init
    this.lookup = lookup
  }

  /**
   * Keyword search: the providers of each word from the DHT, each asked for its offers
   * as soon as the DHT names it (while the query goes on). Every keyword provider of an
   * offer holds its content (announcing puts a node under the content and its keywords
   * alike), so they are the listing's providers: no second DHT query per offer.
   */
  async search (words: string[], options: SearchOptions = {}): Promise<OfferListing[]> {
    const offers = new Map<string, { offer: Signed<Offer>, providers: Set<string> }>()
    const asking: Array<Promise<void>> = []
    for (const word of keywordsOf(...words)) {
      for await (const provider of this.init.discovery.findKeyword(word, { limit: options.limit ?? 20, timeoutMs: options.timeoutMs ?? 10_000, signal: options.signal })) {
        asking.push(this.ask(provider, word, offers, options.signal))
      }
    }
    await Promise.all(asking)
    const listings: OfferListing[] = []
    for (const [id, { offer, providers }] of offers) {
      await this.init.market.rememberOffer(offer)
      const { terms } = offer.body
      listings.push({ offer: id, content: terms.content.toString(), title: offer.body.title, tags: offer.body.tags, price: terms.price, currency: terms.currency, t: terms.t, escrows: terms.escrows.length, seller: terms.seller, providers: providers.size, open: offer.body.shares.length > 0, licenceTtlMs: offer.body.licenceTtl })
    }
    return listings
  }

  /** What buying the offer costs: its price at each of the t escrows it pays, and in all */
  async quote (ref: string, options: AbortOptions = {}): Promise<Quote> {
    const offer = await this.lookup.find(ref, { signal: options.signal })
    await assertSellerSigned(offer)
    const { terms } = offer.body
    return { offer: signedId(offer).toString(), content: terms.content.toString(), title: offer.body.title, price: terms.price, currency: terms.currency, t: terms.t, total: terms.price * terms.t }
  }

  /** One provider's offers under one word: unexpired, signed by their seller */
  private async ask (provider: { peerId: string, multiaddrs: string[] }, word: string, offers: Map<string, { offer: Signed<Offer>, providers: Set<string> }>, parent?: AbortSignal): Promise<void> {
    try {
      const signal = timeoutSignal(10_000, parent)
      for (const offer of await requestOffers({ connectionManager: this.init.streams }, providerAddress(provider), { keyword: word }, { signal })) {
        const id = signedId(offer).toString()
        let known = offers.get(id)
        if (known == null) {
          if (offer.body.terms.expiry <= Date.now()) continue
          if ((await verifyPeerSigned(offer, 'offer').catch(() => undefined)) !== offer.body.terms.seller) continue
          // another answer may have checked the same offer meanwhile
          known = offers.get(id) ?? { offer, providers: new Set() }
          offers.set(id, known)
        }
        known.providers.add(provider.peerId)
      }
    } catch (err: unknown) {
      this.init.log('no offers from %s: %s', provider.peerId, reasonOf(err))
    }
  }
}
