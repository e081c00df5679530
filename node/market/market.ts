// What every keyfair node offers the market: the ciphertext and offers it serves
// (as publisher or seeder) over the content and offer protocols, the agency it
// trusts, and the offers it has seen in searches.
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { serviceCapabilities, serviceDependencies } from '@libp2p/interface'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { parseSignedOffer } from '../../device/objects/market.ts'
import { signedId } from '../../device/objects/signed.ts'
import { writeFileAtomic } from '../../device/store/files.ts'
import { ContentService } from '../../protocols/market/content.ts'
import { OfferService } from '../../protocols/market/offer.ts'
import { UnknownOfferError } from './errors.ts'
import { INBOUND_BUDGET_CAPABILITY } from '../../protocols/toolkit/budget.ts'
import { AgencyTrust } from '../agency/trust.ts'
import { CRL_FEED_CAPABILITY } from '../agency/crl-feed.ts'
import type { CrlFeed, CrlListener } from '../agency/crl-feed.ts'
import { ContentStore } from '../content/store.ts'
import { normaliseKeyword } from '../discovery/keywords.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { OfferQuery } from '../../protocols/market/offer.ts'
import type { FramedServiceComponents, StreamOpener } from '../../protocols/toolkit/index.ts'
import type { ComponentLogger, Logger, Startable } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'

export { UnknownOfferError }

export interface MarketComponents extends FramedServiceComponents {
  connectionManager: ConnectionManager
  logger: ComponentLogger
  /** agencies' revocation lists, for the trusted agency's */
  crl: CrlFeed
}

/** What the market provides to the services that declare they depend on it */
export const MARKET_CAPABILITY = 'keyfair:market'

export class Market implements Startable {
  readonly content: ContentStore
  readonly trust: AgencyTrust
  private readonly offersDir: string
  private readonly log: Logger
  private readonly services: Startable[]

  readonly [Symbol.toStringTag] = 'keyfair:market'
  readonly [serviceCapabilities] = [MARKET_CAPABILITY]
  readonly [serviceDependencies] = [CRL_FEED_CAPABILITY, INBOUND_BUDGET_CAPABILITY]

  constructor (components: MarketComponents, init: { repoPath: string }) {
    this.log = components.logger.forComponent('keyfair:market')
    this.content = new ContentStore(join(init.repoPath, 'content'))
    this.offersDir = join(init.repoPath, 'offers')
    // the feed is read from the components when the trust follows an agency, once libp2p has built them all
    const crl = { follow: (root: string, listener: CrlListener) => components.crl.follow(root, listener) }
    this.trust = new AgencyTrust({ repoPath: init.repoPath, streams: components.connectionManager as StreamOpener, crl, log: this.log })
    this.services = [
      new ContentService(components, {
        source: {
          manifestBytes: async cid => await this.content.isServing(cid) ? this.content.manifestBytes(cid) : undefined,
          chunkCount: async cid => await this.content.isServing(cid) ? (await this.content.manifest(cid))?.chunkCount : undefined,
          readChunks: (cid, from, to) => this.content.readChunks(cid, from, to)
        }
      }),
      new OfferService(components, { source: { offers: async (query, limit) => this.servedOffers(query, limit) } })
    ]
  }

  async start (): Promise<void> {
    for (const service of this.services) await service.start()
    await this.trust.start()
  }

  async stop (): Promise<void> {
    this.trust.stop()
    for (const service of this.services) await service.stop()
  }

  /** Offers this node serves: those of contents it publishes or seeds */
  async servedOffers (query: OfferQuery, limit: number): Promise<Array<Signed<Offer>>> {
    if ('content' in query) {
      const cid = query.content.toString()
      return await this.content.isServing(cid) ? (await this.content.offers(cid)).slice(0, limit) : []
    }
    const word = normaliseKeyword(query.keyword)
    const out: Array<Signed<Offer>> = []
    for (const summary of await this.content.list()) {
      if (out.length >= limit) break
      if (!(await this.content.isServing(summary.content))) continue
      for (const offer of await this.content.offers(summary.content)) {
        const words = [...offer.body.title.split(/\s+/), ...offer.body.tags].map(w => normaliseKeyword(w))
        // an offer is announced under its own id too
        if (words.includes(word) || signedId(offer).toString() === word) out.push(offer)
      }
    }
    return out.slice(0, limit)
  }

  /** Remembers an offer seen in a search, so `buy <offer id>` can find it */
  async rememberOffer (offer: Signed<Offer>): Promise<string> {
    const id = signedId(offer).toString()
    await mkdir(this.offersDir, { recursive: true })
    await writeFileAtomic(join(this.offersDir, id), encodeObject(offer), 0o644)
    return id
  }

  async knownOffer (id: string): Promise<Signed<Offer>> {
    try {
      return parseSignedOffer(decodeObject(await readFile(join(this.offersDir, id.replace(/[^A-Za-z0-9]/g, '')))))
    } catch (err: any) {
      if (err.code === 'ENOENT') {
        // our own and seeded contents' offers count as known too
        for (const summary of await this.content.list()) {
          for (const offer of await this.content.offers(summary.content)) if (signedId(offer).toString() === id) return offer
        }
        throw new UnknownOfferError(id)
      }
      throw err
    }
  }

  async knownOfferIds (): Promise<string[]> {
    try {
      return await readdir(this.offersDir)
    } catch (err: any) {
      if (err.code === 'ENOENT') return []
      throw err
    }
  }
}
