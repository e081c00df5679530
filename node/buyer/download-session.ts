// One purchase's download: providers, manifest, ranges, trim, chunk checks, resume and the chunk budget.
import { peerIdFromString } from '@libp2p/peer-id'
import { MAX_RANGE, fetchChunks, fetchManifest } from '../../protocols/market/content.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { TAG_LENGTH } from '../../device/crypto/index.ts'
import { BadChunkError } from '../content/store.ts'
import { ChunkPool } from './chunk-pool.ts'
import { StreamSweeper, TRANSFER_SWEEP_BYTES } from '../../device/sweeper.ts'
import { NoProvidersError, reasonOf } from './errors.ts'
import { providerAddress } from './offer-lookup.ts'
import { ProviderTrim } from './provider-trim.ts'
import { splitRanges, takeRange } from './ranges.ts'
import { delayChunkWrite } from '../content/disk-delay.ts'
import type { ByteBudget } from './byte-budget.ts'
import type { DownloadGate } from './download-gate.ts'
import type { ChunkRange as Range } from './ranges.ts'
import type { StoredOrder } from './stored-order.ts'
import type { BuyProgress, BuyResult, BuyerInit } from './types.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { ContentManifest as Manifest } from '../../device/crypto/content.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const RANGE = 16
/** a range's size while the download still measures which providers help */
const TRIAL_RANGE_BYTES = 4 * 1024 * 1024
/** ranges in flight per provider: the next one is asked for while the last is still arriving */
const STREAMS_PER_PROVIDER = 2
/** the smallest window over which providers' worth to a download is measured */
const TRIM_WINDOW_MIN_BYTES = 8 * 1024 * 1024

interface Provider { id: string, address: PeerId | Multiaddr[] }

export interface DownloadOutcome {
  resumedFrom: number
  dropped: BuyResult['dropped']
  sources: BuyResult['sources']
  chunkBuffers: number
}

export interface DownloadSessionInit {
  buyer: BuyerInit
  offer: Signed<Offer>
  progress: (p: BuyProgress) => void
  /** the providers the buyer named, if any */
  from?: string[]
  signal: AbortSignal
  order: StoredOrder
  gate: DownloadGate
  /** shared by every provider: a range is asked for only once its bytes are reserved here */
  budget: ByteBudget
}

/** The ranges are shared by every provider's streams; a range a provider fails goes back to the others */
export class DownloadSession {
  private readonly init: DownloadSessionInit
  private readonly content: string
  private readonly providers: Provider[] = []
  private readonly alive = new Set<string>()
  private readonly dropped: BuyResult['dropped'] = []
  private readonly delivered = new Map<string, number>()
  private readonly running: Array<Promise<void>> = []
  private failure: unknown
  private ranges: Range[] = []
  private rangeSize = 1
  private bytesDone = 0
  private total = 0
  private manifest!: Manifest
  private pool!: ChunkPool
  /**
   * A young collection every few megabytes received. The transport hands each Noise message
   * over in fresh buffers, which V8 counts against the old generation's limit until a young
   * collection frees them, and the buffers' small handles hardly fill the young generation:
   * left alone, they pile up past the limit's slack and start a full collection every few
   * megabytes. Chunks are copied into the pool as they arrive, so a collection here finds
   * the transport's buffers already dead, and promotes none of what waits for the disk.
   */
  private readonly sweeper = new StreamSweeper(TRANSFER_SWEEP_BYTES)
  private trim!: ProviderTrim

  constructor (init: DownloadSessionInit) {
    this.init = init
    this.content = init.offer.body.terms.content.toString()
  }

  /** Manifest, then every missing chunk from the content's providers in parallel */
  async run (): Promise<DownloadOutcome> {
    const { market } = this.init.buyer
    if (await market.content.isComplete(this.content)) {
      const chunkCount = (await market.content.manifest(this.content))!.chunkCount
      this.init.gate.manifestStored()
      this.init.order.begin(chunkCount, [])
      return { resumedFrom: chunkCount, dropped: [], sources: [], chunkBuffers: 0 }
    }
    await this.findProviders()
    await this.storeManifest()
    this.manifest = (await market.content.manifest(this.content))!
    // as many buffers as the budget lets chunks be asked for at once, and one more
    this.pool = new ChunkPool(this.manifest.chunkSize + TAG_LENGTH, Math.ceil(this.init.budget.capacity / this.manifest.chunkSize) + 1)
    this.init.gate.manifestStored()
    await this.releasingWriterOnFailure(async () => this.init.gate.opened(this.init.signal))
    const missing = await market.content.missing(this.content)
    this.plan(missing)
    await this.releasingWriterOnFailure(async () => this.fetchRounds())
    if (this.ranges.length > 0) {
      await market.content.releaseWriter(this.content)
      const why = this.dropped.map(d => `${d.provider}: ${d.reason}`).join('; ')
      throw new NoProvidersError(`${this.ranges.reduce((n, r) => n + r.count, 0)} chunks are still missing: no provider left (${why}); run buy again to resume`)
    }
    await market.content.markComplete(this.content)
    const sources = [...this.delivered].map(([provider, bytes]) => ({ provider, bytes, rested: this.alive.has(provider) && !this.trim.active.has(provider) }))
    return { resumedFrom: this.manifest.chunkCount - missing.length, dropped: this.dropped, sources, chunkBuffers: this.pool.allocated }
  }

  /** The providers named by the buyer, or those the DHT knows, and the seller in any case */
  private async findProviders (): Promise<void> {
    const { offer, from, signal, buyer } = this.init
    if (from != null && from.length > 0) {
      // the buyer named its providers: dialled by peer id, the peer store knows their addresses
      for (const id of new Set(from)) this.providers.push({ id, address: peerIdFromString(id) })
      return
    }
    for await (const p of buyer.discovery.findProviders(offer.body.terms.content, { limit: 20, timeoutMs: 10_000, signal })) {
      if (p.peerId !== buyer.peerId) this.providers.push({ id: p.peerId, address: providerAddress(p) })
    }
    const seller = offer.body.terms.seller
    if (!this.providers.some(p => p.id === seller)) this.providers.push({ id: seller, address: peerIdFromString(seller) })
  }

  /** The manifest from the first provider that serves it, unless a resumed download has it */
  private async storeManifest (): Promise<void> {
    const { market, log } = this.init.buyer
    if ((await market.content.manifest(this.content)) != null) return
    for (const p of this.providers) {
      try {
        await market.content.putManifest(await fetchManifest(this.streams(), p.address, this.init.offer.body.terms.content, { signal: AbortSignal.timeout(15_000) }), this.content)
        return
      } catch (err: unknown) {
        log('no manifest from %s: %s', p.id, reasonOf(err))
      }
    }
    throw new NoProvidersError(`no provider of ${this.content} answered`)
  }

  /** The queue of missing ranges, their sizes, and the trim that rests providers that do not help */
  private plan (missing: number[]): void {
    const { manifest, providers } = this
    this.init.order.begin(manifest.chunkCount, missing)
    this.total = manifest.size
    this.bytesDone = this.total - missing.reduce((n, i) => n + this.plainBytes(i), 0)
    // a resumed download starts where it stopped
    if (missing.length < manifest.chunkCount) this.init.progress({ phase: 'download', bytes: this.bytesDone, total: this.total, providers: providers.length })
    // small enough that every stream of every provider gets a share of the work, at most RANGE
    // chunks; with several providers, TRIAL_RANGE_BYTES until the trim has settled
    this.rangeSize = Math.max(1, Math.min(RANGE, MAX_RANGE, Math.ceil(missing.length / (providers.length * STREAMS_PER_PROVIDER * 2))))
    for (const p of providers) this.alive.add(p.id)
    const windowBytes = Math.max(TRIM_WINDOW_MIN_BYTES, Math.ceil(missing.length * manifest.chunkSize / 16))
    this.trim = new ProviderTrim({ providers: providers.map(p => p.id), windowBytes, now: performance.now() })
    const first = this.rangeLimit()
    const trial = providers.length > 1 ? Math.max(1, Math.min(first, Math.floor(TRIAL_RANGE_BYTES / manifest.chunkSize))) : first
    this.ranges = splitRanges(missing, trial)
  }

  /**
   * The most chunks one stream asks for at once: a range is reserved whole before it is
   * asked for, and every stream of the providers now asked should hold one at once (a range
   * of the whole budget would leave the other streams waiting for it to drain, the providers
   * taking turns instead of racing); as providers are rested, the others' ranges grow
   */
  private rangeLimit (): number {
    const asked = this.providers.filter(p => this.alive.has(p.id) && this.trim.active.has(p.id)).length
    const share = Math.floor(this.init.budget.capacity / this.manifest.chunkSize / (Math.max(1, asked) * STREAMS_PER_PROVIDER))
    return Math.max(1, Math.min(this.rangeSize, share))
  }

  /**
   * A range given back by a failing provider goes to those still alive, round after round
   * (rested providers too, once no active one is left); each provider serves several
   * ranges at once so no round trip leaves its link idle
   */
  private async fetchRounds (): Promise<void> {
    const { providers, alive, trim } = this
    while (this.ranges.length > 0 && alive.size > 0 && this.failure == null) {
      if (!providers.some(p => alive.has(p.id) && trim.active.has(p.id))) trim.recallAll(alive)
      for (const p of providers) if (alive.has(p.id) && trim.active.has(p.id)) this.launch(p)
      // a provider called back mid-round adds its workers to this round
      while (this.running.length > 0) await this.running.shift()
    }
    if (this.failure != null) throw this.failure
  }

  private launch (p: Provider): void {
    for (let i = 0; i < STREAMS_PER_PROVIDER; i++) this.running.push(this.work(p).catch(err => { this.failure ??= err }))
  }

  /** One stream of a provider, working through the shared queue */
  private async work (p: Provider): Promise<void> {
    const { signal } = this.init
    while (this.alive.has(p.id) && this.trim.active.has(p.id) && this.ranges.length > 0 && this.failure == null) {
      signal.throwIfAborted()
      const range = takeRange(this.ranges, this.trim.settled ? this.rangeLimit() : 1)!
      await this.fetchRange(p, range)
    }
  }

  /** One range from one provider: its bytes reserved first, each chunk's given back once stored */
  private async fetchRange (p: Provider, range: Range): Promise<void> {
    const { budget, signal } = this.init
    const rangeBytes = this.rangeBytes(range)
    let reserved = rangeBytes
    try {
      await budget.reserve(reserved, signal)
    } catch (err) {
      // a stopped buy gives its range back unasked
      this.ranges.push(range)
      throw err
    }
    let got = 0
    const asked = performance.now()
    try {
      await fetchChunks(this.streams(), p.address, this.init.offer.body.terms.content, range, async (index, chunk) => {
        try {
          await this.store(p, index, chunk)
        } finally {
          this.pool.give(chunk)
        }
        got++
        const bytes = this.plainBytes(index)
        budget.release(bytes)
        reserved -= bytes
      }, { signal: timeoutSignal(60_000, signal), take: length => this.received(length) })
      this.trim.ranged(p.id, rangeBytes, performance.now() - asked)
    } catch (err: unknown) {
      if (got < range.count) this.ranges.push({ from: range.from + got, count: range.count - got })
      signal.throwIfAborted()
      this.drop(p, err)
    } finally {
      budget.release(reserved)
    }
  }

  /** A chunk checked against the manifest and written, then handed on to the play behind it */
  private async store (p: Provider, index: number, chunk: Uint8Array): Promise<void> {
    const { signal, buyer } = this.init
    // a stopped buy writes nothing more, not even chunks that had already arrived
    signal.throwIfAborted()
    await delayChunkWrite(signal)
    await buyer.market.content.writeChunk(this.content, index, chunk)
    this.init.order.add(index)
    this.bytesDone += this.plainBytes(index)
    this.init.progress({ phase: 'download', bytes: this.bytesDone, total: this.total, providers: this.alive.size, provider: p.id })
    const bytes = chunk.length
    this.delivered.set(p.id, (this.delivered.get(p.id) ?? 0) + bytes)
    const decision = this.trim.delivered(p.id, bytes, performance.now())
    if (decision?.rest != null) buyer.log('resting provider %s: the download is no slower without it', decision.rest)
    if (decision?.recall != null) {
      buyer.log('calling provider %s back: the download was slower without it', decision.recall)
      this.launch(this.providers.find(q => q.id === decision.recall)!)
    }
  }

  /** A provider that failed a range serves no more of this download */
  private drop (p: Provider, err: unknown): void {
    // its other stream may have dropped it already
    if (!this.alive.delete(p.id)) return
    this.trim.remove(p.id)
    const reason = err instanceof BadChunkError ? 'served a chunk that does not match the manifest' : reasonOf(err)
    this.init.buyer.log('dropping provider %s: %s', p.id, reason)
    this.dropped.push({ provider: p.id, reason })
    this.init.progress({ phase: 'provider-dropped', provider: p.id, reason })
  }

  /** The buffer a chunk of `length` bytes is received into, as it starts arriving */
  private received (length: number): Uint8Array {
    this.sweeper.streamed(length)
    return this.pool.take(length)
  }

  /** Plaintext bytes of chunk i (the last one is short): what the budget counts */
  private plainBytes (i: number): number {
    return Math.min(this.manifest.chunkSize, this.total - i * this.manifest.chunkSize)
  }

  private rangeBytes (range: Range): number {
    let bytes = 0
    for (let i = range.from; i < range.from + range.count; i++) bytes += this.plainBytes(i)
    return bytes
  }

  private streams (): { connectionManager: BuyerInit['streams'] } {
    return { connectionManager: this.init.buyer.streams }
  }

  /** A failed step gives up the content's writer, so the next buy can resume */
  private async releasingWriterOnFailure (step: () => Promise<void>): Promise<void> {
    try {
      await step()
    } catch (err) {
      await this.init.buyer.market.content.releaseWriter(this.content)
      throw err
    }
  }
}
