import { serviceCapabilities, serviceDependencies, setMaxListeners } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { BadRequestError } from '../errors.ts'
import { keywordCid, keywordsOf } from './keywords.ts'
import type { AnnouncementStore } from './announcements.ts'
import type { AbortOptions, ComponentLogger, ContentRouting, Logger, PeerId, Startable } from '@libp2p/interface'

export interface DiscoveryComponents {
  peerId: PeerId
  contentRouting: ContentRouting
  logger: ComponentLogger
}

export interface DiscoveryInit {
  store: AnnouncementStore
  /** Upper bound for one provide of one key. */
  provideTimeoutMs?: number
  /** Re-provide everything this often (provider records expire in the DHT). */
  reprovideIntervalMs?: number
}

export interface ProvideResult {
  cid: string
  keyword?: string
  ok: boolean
  error?: string
}

export interface AnnounceResult {
  contentId: string
  keywords: string[]
  provided: ProvideResult[]
}

export interface Provider {
  peerId: string
  multiaddrs: string[]
}

export interface AnnounceOptions extends AbortOptions {
  /** offer ids announced with the content, each as a keyword: a buyer finds an offer by its id alone */
  offers?: string[]
}

export interface FindOptions extends AbortOptions {
  /** Stop after this many distinct providers. */
  limit?: number
  /** Total time budget, retries included. */
  timeoutMs?: number
}

/** What discovery provides to the services that declare they depend on it */
export const DISCOVERY_CAPABILITY = 'keyfair:discovery'

export const DEFAULT_FIND_LIMIT = 20
export const MAX_FIND_LIMIT = 200
export const DEFAULT_FIND_TIMEOUT_MS = 10_000
export const MAX_FIND_TIMEOUT_MS = 120_000

/**
 * Discovery (docs/protocol.md, Discovery): content ids and keyword CIDs are provided in kad-dht;
 * a search is a find-providers of a keyword CID. Announcements are kept in the
 * repo and provided again after a restart and on a timer.
 */
export class Discovery implements Startable {
  private readonly components: DiscoveryComponents
  private readonly store: AnnouncementStore
  private readonly log: Logger
  private readonly provideTimeoutMs: number
  private readonly reprovideIntervalMs: number
  private controller?: AbortController
  private timer?: ReturnType<typeof setTimeout>
  private failedPasses = 0

  constructor (components: DiscoveryComponents, init: DiscoveryInit) {
    this.components = components
    this.store = init.store
    this.log = components.logger.forComponent('keyfair:discovery')
    this.provideTimeoutMs = init.provideTimeoutMs ?? 30_000
    this.reprovideIntervalMs = init.reprovideIntervalMs ?? 6 * 60 * 60 * 1000
  }

  readonly [Symbol.toStringTag] = 'keyfair:discovery'
  readonly [serviceCapabilities] = [DISCOVERY_CAPABILITY]
  readonly [serviceDependencies] = ['@libp2p/content-routing']

  start (): void {
    this.controller = new AbortController()
    setMaxListeners(Infinity, this.controller.signal)
  }

  afterStart (): void {
    this.scheduleReprovide(0)
  }

  stop (): void {
    this.controller?.abort()
    clearTimeout(this.timer)
  }

  /**
   * Re-provides every announcement in the background: at start (the DHT lost
   * our records while we were down), then at the interval; a pass that could
   * not reach the DHT (no peers yet) is retried soon, with backoff.
   */
  private scheduleReprovide (delayMs: number): void {
    this.timer = setTimeout(() => {
      void this.reprovideAll()
        .catch(err => { this.log.error('re-provide failed - %e', err); return false })
        .then(ok => {
          if (this.controller?.signal.aborted === true) return
          this.failedPasses = ok ? 0 : this.failedPasses + 1
          this.scheduleReprovide(ok ? this.reprovideIntervalMs : Math.min(2000 * 2 ** this.failedPasses, 5 * 60_000))
        })
    }, delayMs)
    this.timer.unref()
  }

  /**
   * Records then provides a content id and its keywords. The record is durable
   * before any network work, so a crash mid-provide is repaired on restart.
   */
  async announce (contentId: string, words: string[], options: AnnounceOptions = {}): Promise<AnnounceResult> {
    const cid = parseContentId(contentId)
    // an id is one word of base32 letters and digits: it stays whole, beside the title's words
    const keywords = [...keywordsOf(...words), ...(options.offers ?? []).map(id => parseContentId(id).toString())]
    const announcement = this.store.save(cid.toString(), keywords)
    const provided = await this.provideAll(cid, announcement.keywords, options)
    if (provided.every(p => p.ok)) this.store.markProvided(announcement.contentId)
    return { contentId: announcement.contentId, keywords: announcement.keywords, provided }
  }

  /**
   * Stops providing a content and those of its keywords no other announcement uses.
   * Records other peers hold expire on their own; a buyer who still asks is told the
   * content is unknown here and takes another provider.
   */
  async withdraw (contentId: string, options: AbortOptions = {}): Promise<void> {
    const cid = parseContentId(contentId)
    const announcement = this.store.get(cid.toString())
    if (announcement == null) return
    this.store.forget(announcement.contentId)
    const stillUsed = new Set(this.store.list().flatMap(a => a.keywords))
    const keys = [cid, ...announcement.keywords.filter(k => !stillUsed.has(k)).map(keywordCid)]
    for (const key of keys) {
      await this.components.contentRouting.cancelReprovide(key, { signal: options.signal }).catch((err: any) => { this.log('cancel reprovide of %c - %e', key, err) })
    }
  }

  /** Provides one CID with a bounded wait; failures are returned, not thrown. */
  async provide (cid: CID, options: AbortOptions = {}): Promise<ProvideResult> {
    const signal = this.signal(this.provideTimeoutMs, options.signal)
    try {
      await this.components.contentRouting.provide(cid, { signal })
      return { cid: cid.toString(), ok: true }
    } catch (err: any) {
      this.log('provide %c failed - %e', cid, err)
      return { cid: cid.toString(), ok: false, error: signal.aborted ? 'timed out reaching DHT peers' : String(err?.message ?? err) }
    }
  }

  /**
   * Finds providers of a keyword: bounded in time and count. kad-dht can end a
   * query empty-handed while routing tables fill, so an empty result is retried
   * with backoff until the time budget is spent.
   */
  async * findKeyword (word: string, options: FindOptions = {}): AsyncGenerator<Provider> {
    yield * this.findProviders(keywordCid(word), options)
  }

  async * findProviders (cid: CID, options: FindOptions = {}): AsyncGenerator<Provider> {
    const limit = Math.min(options.limit ?? DEFAULT_FIND_LIMIT, MAX_FIND_LIMIT)
    const timeoutMs = Math.min(options.timeoutMs ?? DEFAULT_FIND_TIMEOUT_MS, MAX_FIND_TIMEOUT_MS)
    const signal = this.signal(timeoutMs, options.signal)
    const seen = new Set<string>()
    let backoff = 100
    try {
      while (!signal.aborted && seen.size < limit) {
        for await (const info of this.components.contentRouting.findProviders(cid, { signal })) {
          const peerId = info.id.toString()
          if (seen.has(peerId)) continue
          seen.add(peerId)
          yield { peerId, multiaddrs: info.multiaddrs.map(ma => ma.toString()) }
          if (seen.size >= limit) return
        }
        if (seen.size > 0) return
        this.log('no providers of %c yet, retrying in %d ms', cid, backoff)
        await sleep(backoff, signal)
        backoff = Math.min(backoff * 2, 2000)
      }
    } catch (err) {
      // running out of time is the normal end of a bounded search
      if (!signal.aborted) throw err
    }
  }

  private async provideAll (cid: CID, keywords: string[], options: AbortOptions): Promise<ProvideResult[]> {
    const jobs: Array<Promise<ProvideResult>> = [this.provide(cid, options)]
    for (const keyword of keywords) {
      jobs.push(this.provide(keywordCid(keyword), options).then(r => ({ ...r, keyword })))
    }
    return Promise.all(jobs)
  }

  /** True when every announcement reached the DHT. */
  private async reprovideAll (): Promise<boolean> {
    let ok = true
    for (const announcement of this.store.list()) {
      if (this.controller?.signal.aborted === true) return false
      const provided = await this.provideAll(CID.parse(announcement.contentId), announcement.keywords, {})
      if (provided.every(p => p.ok)) this.store.markProvided(announcement.contentId)
      else ok = false
    }
    return ok
  }

  private signal (timeoutMs: number, caller?: AbortSignal): AbortSignal {
    const signals = [AbortSignal.timeout(timeoutMs)]
    if (caller != null) signals.push(caller)
    if (this.controller != null) signals.push(this.controller.signal)
    const signal = AbortSignal.any(signals)
    setMaxListeners(Infinity, signal)
    return signal
  }
}

export function parseContentId (contentId: string): CID {
  try {
    return CID.parse(contentId)
  } catch (err) {
    throw new BadRequestError(`'${contentId}' is not a CID`, { cause: err })
  }
}


async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
