// Buying by an id alone: the offer named by an offer id, or the offer of a content id,
// found on this node or else through the DHT. Sellers and seeders announce each offer's
// id as a keyword beside its content, so the providers of that keyword serve the offer;
// the providers of a content id serve its offers.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { setMaxListeners } from '@libp2p/interface'
import { signedId, verifyPeerSigned } from '../../device/objects/signed.ts'
import { requestOffers } from '../../protocols/market/offer.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { KeyfairError } from '../errors.ts'
import { parseOfferRef } from './offer-ref.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { OfferQuery } from '../../protocols/market/offer.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { Discovery, Provider } from '../discovery/discovery.ts'
import { UnknownOfferError } from '../market/market.ts'
import type { Market } from '../market/market.ts'
import type { Logger, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** The market's refusal, after a search of this node and the DHT */
export class OfferNotFoundError extends UnknownOfferError {
  constructor (id: string, timeoutMs: number) {
    super(id, `no offer ${id}, and no offer of a content ${id}, was found on this node or in the DHT within ${Math.round(timeoutMs / 1000)} s`)
  }
}

export class SeveralOffersError extends KeyfairError {
  static readonly code = 'ERR_SEVERAL_OFFERS'
  constructor (content: string, offers: string[]) {
    super(`content ${content} has ${offers.length} offers: buy one by its offer id (${offers.join(', ')})`, SeveralOffersError.code)
  }
}

export function providerAddress (provider: Provider): PeerId | Multiaddr[] {
  return provider.multiaddrs.length > 0
    ? provider.multiaddrs.map(a => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${provider.peerId}`))
    : peerIdFromString(provider.peerId)
}

export interface OfferLookupInit {
  market: Market
  discovery: Discovery
  streams: StreamOpener
  log: Logger
}

const ASK_TIMEOUT_MS = 10_000
export const LOOKUP_TIMEOUT_MS = 15_000

export class OfferLookup {
  private readonly init: OfferLookupInit

  constructor (init: OfferLookupInit) {
    this.init = init
  }

  /** The offer an id names: known here, else asked of the DHT's providers; remembered once found */
  async find (text: string, options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Signed<Offer>> {
    const ref = parseOfferRef(text)
    const id = ref.toString()
    const local = await this.local(id)
    if (local != null) return local
    const timeoutMs = options.timeoutMs ?? LOOKUP_TIMEOUT_MS
    const done = new AbortController()
    const signal = AbortSignal.any([done.signal, timeoutSignal(timeoutMs, options.signal)])
    setMaxListeners(Infinity, signal)
    try {
      // the id is one or the other: whichever lookup answers first decides
      const [byId, byContent] = await Promise.all([
        this.ask(this.init.discovery.findKeyword(id, { signal, timeoutMs }), { keyword: id }, signal).then(offers => {
          const found = offers.filter(o => signedId(o).toString() === id)
          if (found.length > 0) done.abort()
          return found
        }),
        this.ask(this.init.discovery.findProviders(ref, { signal, timeoutMs }), { content: ref }, signal).then(offers => {
          const found = offers.filter(o => o.body.terms.content.equals(ref))
          if (found.length > 0) done.abort()
          return found
        })
      ])
      options.signal?.throwIfAborted()
      const offer = this.choose(id, byId, byContent, timeoutMs)
      await this.init.market.rememberOffer(offer)
      return offer
    } finally {
      done.abort()
    }
  }

  private async local (id: string): Promise<Signed<Offer> | undefined> {
    try {
      return await this.init.market.knownOffer(id)
    } catch (err: any) {
      if (err.code === 'ERR_UNKNOWN_OFFER') return undefined
      throw err
    }
  }

  private choose (id: string, byId: Array<Signed<Offer>>, byContent: Array<Signed<Offer>>, timeoutMs: number): Signed<Offer> {
    if (byId.length > 0) return byId[0]!
    const distinct = new Map(byContent.map(o => [signedId(o).toString(), o]))
    if (distinct.size === 1) return [...distinct.values()][0]!
    if (distinct.size > 1) throw new SeveralOffersError(id, [...distinct.keys()])
    throw new OfferNotFoundError(id, timeoutMs)
  }

  /** Every provider the DHT names is asked, as it is named; offers not signed by their seller, or expired, are dropped */
  private async ask (providers: AsyncIterable<Provider>, query: OfferQuery, signal: AbortSignal): Promise<Array<Signed<Offer>>> {
    const asking: Array<Promise<Array<Signed<Offer>>>> = []
    for await (const provider of providers) asking.push(this.askOne(provider, query, signal))
    return (await Promise.all(asking)).flat()
  }

  private async askOne (provider: Provider, query: OfferQuery, signal: AbortSignal): Promise<Array<Signed<Offer>>> {
    const valid: Array<Signed<Offer>> = []
    try {
      const offers = await requestOffers({ connectionManager: this.init.streams }, providerAddress(provider), query, { signal: timeoutSignal(ASK_TIMEOUT_MS, signal) })
      for (const offer of offers) {
        if (offer.body.terms.expiry <= Date.now()) continue
        if ((await verifyPeerSigned(offer, 'offer').catch(() => undefined)) === offer.body.terms.seller) valid.push(offer)
      }
    } catch (err: any) {
      this.init.log('no offers from %s: %s', provider.peerId, err.code ?? err.message)
    }
    return valid
  }
}
