/**
 * /keyfair/offer/1.0.0 (docs/protocol.md, Protocols): signed offers for a content id, or for a keyword,
 * as a bounded list. Whoever serves them need not be trusted: each offer carries the
 * seller's signature, checked by the buyer (and its device and the escrows).
 */
import { CID } from 'multiformats/cid'
import { parseSignedOffer } from '../../device/objects/market.ts'
import { BadMessageError } from '../errors.ts'
import { FramedService, expectArray, expectRecord, expectString, expectUint, withFrames } from '../toolkit/index.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const OFFER_PROTOCOL = '/keyfair/offer/1.0.0'
export const MAX_OFFERS = 32

export const OFFER_LIMITS: ProtocolLimits = {
  maxFrameBytes: 1024 * 1024,
  // a request names a CID or a keyword (≤ 256 characters)
  maxRequestBytes: 4096,
  readTimeoutMs: 10_000,
  maxInboundStreams: 64,
  maxOutboundStreams: 32
}

export type OfferQuery = { content: CID } | { keyword: string }

export interface OfferSource {
  offers: (query: OfferQuery, limit: number) => Promise<Array<Signed<Offer>>>
}

export class OfferService extends FramedService {
  readonly protocol = OFFER_PROTOCOL
  private readonly source: OfferSource

  constructor (components: FramedServiceComponents, init: { source: OfferSource, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:offer', { ...OFFER_LIMITS, ...init.limits })
    this.source = init.source
  }

  protected async handle (frames: FrameStream): Promise<void> {
    const request = expectRecord(await frames.readMessage())
    if (request.v !== 1) throw new BadMessageError('unsupported version')
    const limit = request.limit == null ? MAX_OFFERS : expectUint(request.limit, 'limit', MAX_OFFERS)
    let query: OfferQuery
    if (request.content != null) {
      const content = CID.asCID(request.content)
      if (content == null) throw new BadMessageError('content must be a CID')
      query = { content }
    } else {
      query = { keyword: expectString(request.keyword, 'keyword', 256) }
    }
    const offers = (await this.source.offers(query, limit)).slice(0, limit)
    await frames.writeMessage({ v: 1, offers })
  }
}

/** Offers as the peer listed them; each parsed (not yet verified: the caller checks signatures) */
export async function requestOffers (components: { connectionManager: StreamOpener }, peer: PeerId | Multiaddr | Multiaddr[], query: OfferQuery, options: AbortOptions & { limit?: number } = {}): Promise<Array<Signed<Offer>>> {
  return withFrames(components.connectionManager, peer, OFFER_PROTOCOL, OFFER_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, ...query, limit: options.limit ?? MAX_OFFERS }, options)
    const answer = expectRecord(await frames.readMessage(options), 'offers')
    const offers: Array<Signed<Offer>> = []
    for (const value of expectArray(answer.offers, 'offers', MAX_OFFERS)) {
      try {
        offers.push(parseSignedOffer(value))
      } catch {
        // a malformed offer from this peer is dropped, not fatal to the others
      }
    }
    return offers
  }, options)
}
