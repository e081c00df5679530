// The buyer's side of the market (docs/protocol.md, Roles): search offers, download the ciphertext
// from any providers (each chunk checked against the manifest), pay t escrows through
// the sealed device, route around dead or cheating escrows, play, confirm or dispute,
// and seed the ciphertext if asked.
// Longer than the rest: a purchase's download, payment and settlement still share this class
// (the reservations, lookup, redial and ranges are in files of their own).
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { bytesEqual } from '../../device/crypto/index.ts'
import { encodeObject } from '../../device/objects/codec.ts'
import { signedId, verifyPeerSigned } from '../../device/objects/signed.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { requestSettle } from '../../protocols/escrow/settle.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import { KeyfairError, RemoteError } from '../../protocols/errors.ts'
import { MAX_RANGE, fetchChunks, fetchManifest } from '../../protocols/market/content.ts'
import { requestLicence } from '../../protocols/market/license.ts'
import { requestOffers } from '../../protocols/market/offer.ts'
import { BadChunkError } from '../content/store.ts'
import { keywordsOf } from '../discovery/keywords.ts'
import { ProviderTrim } from './provider-trim.ts'
import { OfferLookup, providerAddress } from './offer-lookup.ts'
import { LicenceRenewal } from './renewal.ts'
import type { RenewalResult } from './renewal.ts'
import { splitRanges, takeRange } from './ranges.ts'
import { StoredOrder } from './stored-order.ts'
import { withRedial } from './redial.ts'
import { DownloadGate } from './download-gate.ts'
import { cancelReservations, reserveEscrows } from './reservations.ts'
import type { PurchaseInfo } from '../../device/interface.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { DeviceClient } from '../device/client.ts'
import type { Discovery } from '../discovery/discovery.ts'
import type { Market } from '../market/market.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { AbortOptions, Logger, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { BuyProgress, EscrowState, PlayProgress } from '../control/progress.ts'

export class BuyError extends KeyfairError {}

export interface BuyerInit {
  peerId: string
  market: Market
  discovery: Discovery
  streams: StreamOpener
  device: () => DeviceClient
  log: Logger
}

export interface OfferListing {
  offer: string
  content: string
  title: string
  tags: string[]
  price: number
  currency: string
  t: number
  escrows: number
  seller: string
  providers: number
  /** the offer carries open shares: it sells with the seller offline, and t escrows together could learn its key */
  open: boolean
  /** how long a licence plays offline before it must be renewed, in ms */
  licenceTtlMs: number
}

export type { BuyProgress, PlayProgress } from '../control/progress.ts'

export interface BuyResult {
  /** chunks already on disk when this run started (a resumed download) */
  resumedFrom: number
  /** providers dropped during the download, and why */
  dropped: Array<{ provider: string, reason: string }>
  /** verified bytes each provider delivered in this run; rested: asked for no more ranges at the end (no faster with it) */
  sources: Array<{ provider: string, bytes: number, rested: boolean }>
  purchase: string
  offer: string
  content: string
  bound: boolean
  escrows: Array<{ j: number, peer: string, outcome: string }>
  /** what each accepting escrow was paid, in minor units of `currency` (the offer's price) */
  price: number
  currency: string
  /** paid in total: the price at each escrow that accepted */
  paid: number
  output?: string
  bytes?: number
  seeding: boolean
  timings: BuyTimings
}

/** Where the time went, in milliseconds; payment and play run during the download */
export interface BuyTimings {
  /** from the start of the buy to the manifest and every missing chunk verified and on disk */
  download: number
  /** the seller's device-bound licence (or learning there is none) */
  licence: number
  /** from the device's first request to the key rebuilt inside it (t escrows paid) */
  keyRelease: number
  /** each escrow's steps within the key release, as ms since its start: where a share's time went */
  shares: ShareTimings[]
  /** the device rebuilding the key from the checked shares, after the last one */
  rebuild: number
  /** from the end of the download to the end of decrypting to the output (when one was asked for) */
  play: number
  total: number
}

/** Milliseconds since the key release began at which each step of one escrow's share ended */
export interface ShareTimings {
  j: number
  /** the escrow's identity checked against the offer and the agency (for the first t, begun with the licence) */
  checked?: number
  /** the device's signed request in hand */
  requested?: number
  /** the escrow's answer received */
  answered?: number
  /** the device's verdict on the answer */
  judged?: number
}

export interface BuyOptions {
  output?: string
  seed?: boolean
  /** download only from these providers (peer ids), not from every provider the DHT knows */
  from?: string[]
  signal?: AbortSignal
  onProgress?: (p: BuyProgress) => void
}

/** The reservations of a buy in progress: released when it fails before their escrows answered */
interface Reservations {
  purchase?: string
  held: number[]
}

/** What the payment shares with the download it runs beside */
interface PayRun {
  gate: DownloadGate
  order: StoredOrder
  downloading: Promise<unknown>
  reserved: Reservations
}

export interface Quote {
  offer: string
  content: string
  title: string
  /** to each of the t escrows, in minor units of `currency` */
  price: number
  currency: string
  t: number
  /** price × t: what the buy pays in all */
  total: number
}

export interface SettlementResult {
  purchase: string
  escrows: Array<{ j: number, peer: string, state?: string, refused?: boolean, reason?: string, error?: string }>
  /** the hold at each escrow, in minor units of `currency` (the offer's price) */
  price: number
  currency: string
}

const ESCROW_TIMEOUT_MS = 15_000
const LICENCE_TIMEOUT_MS = 10_000
const RANGE = 16
/** a range's size while the download still measures which providers help */
const TRIAL_RANGE_BYTES = 4 * 1024 * 1024
/** ranges in flight per provider: the next one is asked for while the last is still arriving */
const STREAMS_PER_PROVIDER = 2
/** The code of an escrow's refusal when it gave no code of its own */
const REFUSAL_CODES = {
  'fraud-refunded': 'ERR_FRAUD_REFUNDED',
  'fraud-unrefunded': 'ERR_FRAUD_UNREFUNDED',
  unavailable: 'ERR_ESCROW_UNAVAILABLE'
} as const

/** the smallest window over which providers' worth to a download is measured */
const TRIM_WINDOW_MIN_BYTES = 8 * 1024 * 1024

export class Buyer {
  private readonly init: BuyerInit

  private readonly renewal: LicenceRenewal

  private readonly lookup: OfferLookup

  constructor (init: BuyerInit) {
    this.init = init
    this.renewal = new LicenceRenewal({ streams: init.streams, device: init.device, log: init.log })
    this.lookup = new OfferLookup({ market: init.market, discovery: init.discovery, streams: init.streams, log: init.log })
  }

  /** Renews a licence past (or before) the end of its offline lifetime, through an escrow of its offer */
  async renew (content: string, options: AbortOptions = {}): Promise<RenewalResult> {
    return this.renewal.renew(content, options)
  }

  /**
   * Keyword search: the providers of each word from the DHT, each asked for its offers
   * as soon as the DHT names it (while the query goes on). Every keyword provider of an
   * offer holds its content (announcing puts a node under the content and its keywords
   * alike), so they are the listing's providers: no second DHT query per offer.
   */
  async search (words: string[], options: { limit?: number, timeoutMs?: number, signal?: AbortSignal } = {}): Promise<OfferListing[]> {
    const { discovery, market } = this.init
    const offers = new Map<string, { offer: Signed<Offer>, providers: Set<string> }>()
    const asking: Array<Promise<void>> = []
    const ask = async (provider: { peerId: string, multiaddrs: string[] }, word: string): Promise<void> => {
      try {
        const signal = timeoutSignal(10_000, options.signal)
        for (const offer of await requestOffers({ connectionManager: this.init.streams }, this.addressOf(provider), { keyword: word }, { signal })) {
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
      } catch (err: any) {
        this.init.log('no offers from %s: %s', provider.peerId, err.code ?? err.message)
      }
    }
    for (const word of keywordsOf(...words)) {
      for await (const provider of discovery.findKeyword(word, { limit: options.limit ?? 20, timeoutMs: options.timeoutMs ?? 10_000, signal: options.signal })) {
        asking.push(ask(provider, word))
      }
    }
    await Promise.all(asking)
    const listings: OfferListing[] = []
    for (const [id, { offer, providers }] of offers) {
      await market.rememberOffer(offer)
      const { terms } = offer.body
      listings.push({ offer: id, content: terms.content.toString(), title: offer.body.title, tags: offer.body.tags, price: terms.price, currency: terms.currency, t: terms.t, escrows: terms.escrows.length, seller: terms.seller, providers: providers.size, open: offer.body.shares.length > 0, licenceTtlMs: offer.body.licenceTtl })
    }
    return listings
  }

  /** What buying the offer costs: its price at each of the t escrows it pays, and in all */
  async quote (ref: string, options: AbortOptions = {}): Promise<Quote> {
    const offer = await this.lookup.find(ref, { signal: options.signal })
    if ((await verifyPeerSigned(offer, 'offer')) !== offer.body.terms.seller) throw new BuyError('the offer is not signed by its seller', 'ERR_BAD_SIGNATURE')
    const { terms } = offer.body
    return { offer: signedId(offer).toString(), content: terms.content.toString(), title: offer.body.title, price: terms.price, currency: terms.currency, t: terms.t, total: terms.price * terms.t }
  }

  /**
   * The whole purchase; every step resumes where it stopped when run again. The steps
   * overlap: payment starts once a provider has served a chunk that verifies, and the
   * device decrypts each chunk as soon as it and all before it are on disk. The offer is
   * named by its id or by its content's id, and found through the DHT when not known here.
   */
  async buy (ref: string, options: BuyOptions): Promise<BuyResult> {
    const { market } = this.init
    const started = performance.now()
    const progress = options.onProgress ?? (() => {})
    const offer = await this.lookup.find(ref, { signal: options.signal })
    const offerId = signedId(offer).toString()
    if ((await verifyPeerSigned(offer, 'offer')) !== offer.body.terms.seller) throw new BuyError('the offer is not signed by its seller', 'ERR_BAD_SIGNATURE')
    const device = this.init.device()
    const status = await device.status()
    if (!status.unlocked) throw new BuyError('unlock the sealed device first (keyfair device unlock)', 'ERR_DEVICE_LOCKED')
    if (!status.enrolled) throw new BuyError('enroll the sealed device with an agency first (keyfair device enroll)', 'ERR_NOT_ENROLLED')
    const cid = offer.body.terms.content.toString()
    // the device draws the blinding factors while the download starts and the licence is fetched
    device.prepareShares({ offer: encodeObject(offer) }).catch((err: any) => { this.init.log('blinding factors not drawn ahead: %s', err.code ?? err.message) })
    const timings: BuyTimings = { download: 0, licence: 0, keyRelease: 0, shares: [], rebuild: 0, play: 0, total: 0 }

    // the download stops with the buy: a failed payment leaves what it fetched, for next time
    const stop = new AbortController()
    const signal = options.signal == null ? stop.signal : AbortSignal.any([stop.signal, options.signal])
    const order = new StoredOrder()
    const gate = new DownloadGate()
    const downloading = this.download(offer, progress, options.from, signal, order, gate).then(result => {
      timings.download = performance.now() - started
      return result
    })
    downloading.catch(() => {}) // awaited below, after the payment
    let playing: Promise<{ bytes: number }> | undefined
    const reserved: Reservations = { held: [] }
    try {
      // the purchase opens on the manifest; its price is reserved before any chunk comes
      await Promise.race([gate.manifest, downloading])
      const { purchase, bound, escrows } = await this.pay(offer, progress, timings, signal, { gate, order, downloading, reserved })
      if (options.output != null) {
        playing = this.followPlay(cid, options.output, order, progress)
        playing.catch(() => {}) // awaited once the download is done
      }
      const { resumedFrom, dropped, sources } = await downloading
      const downloaded = performance.now()
      const bytes = (await playing)?.bytes
      if (playing != null) timings.play = performance.now() - downloaded
      await market.content.setPaidPurchase(cid, undefined)
      if (options.seed === true) await this.seed(offer)
      timings.total = performance.now() - started
      const { price, currency } = offer.body.terms
      const paid = price * escrows.filter(e => e.outcome === 'accepted').length
      return { resumedFrom, dropped, sources, purchase, offer: offerId, content: cid, bound, escrows, price, currency, paid, output: options.output, bytes, seeding: options.seed === true, timings }
    } catch (err) {
      stop.abort()
      await downloading.catch(() => {})
      await this.releaseUnanswered(offer, reserved)
      // a play waiting for chunks that will not come ends now, its partial output removed
      if (playing != null) await device.playFeed({ content: cid, stopped: true }).catch(() => {})
      await playing?.catch(() => {})
      throw err
    }
  }

  /**
   * Pays for the offer, unless a paid buy of it is still unfinished on this node: an open
   * purchase (payment interrupted) is continued, a complete one is reused, never paid twice.
   */
  private async pay (offer: Signed<Offer>, progress: (p: BuyProgress) => void, timings: BuyTimings, signal: AbortSignal, run: PayRun): Promise<{ purchase: string, bound: boolean, escrows: BuyResult['escrows'] }> {
    const { market } = this.init
    const device = this.init.device()
    const offerId = signedId(offer).toString()
    const cid = offer.body.terms.content.toString()
    // only this offer's purchases cross the device's pipe, however many the device holds
    const purchases = await device.purchases({ offer: offerId })
    const paid = await market.content.paidPurchase(cid)
    const unfinished = purchases.find(p => p.purchase === paid && p.state === 'complete')
    if (unfinished != null) {
      run.gate.open()
      const escrows = unfinished.accepted.map(j => ({ j, peer: offer.body.terms.escrows[j - 1]!.peer, outcome: 'accepted' }))
      return { purchase: unfinished.purchase, bound: unfinished.bound, escrows }
    }
    let mark = performance.now()
    const open = purchases.find(p => p.state === 'open')
    // the escrows asked first are checked while the licence is fetched and the purchase opened
    const done = new Set([...(open?.accepted ?? []), ...(open?.faulty ?? [])])
    const checks = new Map<number, Promise<void>>()
    for (const [i] of offer.body.terms.escrows.entries()) {
      if (checks.size + (open?.accepted.length ?? 0) >= offer.body.terms.t) break
      if (done.has(i + 1)) continue
      const check = this.checkEscrow(offer, i + 1, signal)
      check.catch(() => {}) // its lane reports the failure
      checks.set(i + 1, check)
    }
    let purchase = open?.purchase
    let bound = open?.bound ?? false
    if (purchase == null) {
      const licence = await this.fetchLicence(offer)
      bound = licence != null
      progress({ phase: 'licence', bound })
      const info = await device.beginPurchase({ offer: encodeObject(offer), manifest: (await market.content.manifestBytes(cid))!, licence, buyer: this.init.peerId })
      purchase = info.purchase
      timings.licence = performance.now() - mark
    }
    // t escrows hold the price before any is asked for its share, and before any chunk comes
    const { terms } = offer.body
    const accepted = open?.accepted ?? []
    const candidates = terms.escrows.map((_, i) => i + 1).filter(j => !done.has(j))
    const certificates = await device.certificates()
    run.reserved.purchase = purchase
    const { held, refused } = await reserveEscrows({
      streams: this.init.streams,
      log: this.init.log,
      offer,
      purchase,
      device: certificates.signing,
      candidates,
      need: Math.max(0, terms.t - accepted.length),
      check: async j => {
        let check = checks.get(j)
        if (check == null) checks.set(j, check = this.checkEscrow(offer, j, signal))
        return check
      },
      progress,
      signal
    })
    run.reserved.held = held
    run.gate.open()
    // a provider must first prove it serves this content: one chunk that verifies
    await Promise.race([run.order.firstStored, run.downloading])
    mark = performance.now()
    const shares = await this.payEscrows(offer, purchase, progress, checks, timings.shares, signal, held, new Set(refused.map(r => r.j)))
    // those that held no reservation were not asked: unavailable to this purchase
    const escrows = [...shares, ...refused.filter(r => !shares.some(e => e.j === r.j)).map(r => ({ j: r.j, peer: r.peer, outcome: 'unavailable' }))].sort((a, b) => a.j - b.j)
    const sharesBought = performance.now()
    await device.completePurchase({ purchase })
    timings.rebuild = performance.now() - sharesBought
    // until the buy finishes, running it again reuses this purchase
    await market.content.setPaidPurchase(cid, purchase)
    timings.keyRelease = performance.now() - mark
    return { purchase, bound, escrows }
  }

  /** After a failed buy: the reservations no escrow answered go back to the buyer at once */
  private async releaseUnanswered (offer: Signed<Offer>, reserved: Reservations): Promise<void> {
    const { purchase } = reserved
    if (purchase == null || reserved.held.length === 0) return
    const accepted = await this.init.device().purchase({ purchase }).then(p => p.accepted, () => [] as number[])
    const unanswered = reserved.held.filter(j => !accepted.includes(j))
    await cancelReservations({ streams: this.init.streams, log: this.init.log, offer, purchase }, unanswered)
  }

  /**
   * Plays behind the download: the device reads each chunk once it and every chunk
   * before it are on disk. The device is told of progress one message at a time, with
   * the latest count, so a fast download does not queue a message per chunk.
   */
  private async followPlay (cid: string, output: string, order: StoredOrder, onProgress: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const { market } = this.init
    const device = this.init.device()
    const manifest = (await market.content.manifestBytes(cid))!
    const total = (await market.content.manifest(cid))!.size
    let told = order.contiguous
    let telling = false
    const tell = async (): Promise<void> => {
      if (telling) return
      telling = true
      try {
        while (order.contiguous > told) {
          told = order.contiguous
          await device.playFeed({ content: cid, available: told })
        }
      } catch (err: any) {
        this.init.log('telling the device of chunk %d failed: %s', told, err.code ?? err.message)
      } finally {
        telling = false
      }
    }
    const playing = device.play({ content: cid, manifest, input: market.content.dataFile(cid), output, available: told }, p => { onProgress({ phase: 'play', bytes: p.bytes, total }) })
    order.onAdvance = () => { void tell() }
    try {
      return await playing
    } finally {
      order.onAdvance = undefined
    }
  }

  async play (content: string, output: string, onProgress?: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const { market } = this.init
    const manifest = await market.content.manifestBytes(content)
    if (manifest == null || !(await market.content.isComplete(content))) throw await this.unknownContent(content)
    const total = (await market.content.manifest(content))!.size
    await this.renewIfExpired(content)
    return this.init.device().play({ content, manifest, input: market.content.dataFile(content), output }, p => onProgress?.({ phase: 'play', bytes: p.bytes, total }))
  }

  /** One request to a peer known by its id, dialled again while it is not reached (after a restart) */
  private async redial<T> (what: string, signal: AbortSignal, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withRedial(attempt, { signal, log: this.init.log, what })
  }

  /** Why `id` cannot be played: it names an offer (whose content id is given), or nothing here */
  private async unknownContent (id: string): Promise<BuyError> {
    const offer = await this.init.market.knownOffer(id).catch(() => undefined)
    if (offer != null) {
      const content = offer.body.terms.content.toString()
      return new BuyError(`${id} is an offer id; play takes the content id: keyfair play ${content}`, 'ERR_OFFER_ID_GIVEN')
    }
    return new BuyError(`the ciphertext of ${id} is not on this node`, 'ERR_UNKNOWN_CONTENT')
  }

  /**
   * A licence past its offline lifetime is renewed before it plays, when an escrow can
   * be reached; otherwise the device's own refusal, with why renewing failed
   */
  private async renewIfExpired (content: string): Promise<void> {
    const device = this.init.device()
    const licence = (await device.library()).find(l => l.content === content)
    if (licence == null || Date.now() <= licence.playUntil) return
    try {
      await this.renewal.renew(content, { signal: AbortSignal.timeout(30_000) })
    } catch (err: any) {
      throw new BuyError(`the licence played offline until ${new Date(licence.playUntil).toISOString()} and could not be renewed: ${String(err.message)}`, 'ERR_LICENCE_EXPIRED')
    }
  }

  /** Confirms a purchase: the device's receipt to every escrow that answered */
  async confirm (purchase: string): Promise<SettlementResult> {
    const { receipt } = await this.init.device().receipt({ purchase })
    return this.settle(purchase, receipt)
  }

  /** Disputes a purchase: the device opens its shares to every escrow that answered */
  async dispute (purchase: string, chunk?: { index: number }): Promise<SettlementResult> {
    const device = this.init.device()
    const info = await this.purchaseInfo(purchase)
    const reason = info.state === 'failed' ? 'key' : 'chunk'
    const args: Parameters<DeviceClient['dispute']>[0] = { purchase, reason }
    if (reason === 'chunk') {
      if (chunk == null) throw new BuyError('the key matched its commitment: name the chunk that fails to play (--chunk N)', 'ERR_BAD_REQUEST')
      args.chunk = { index: chunk.index, data: await this.init.market.content.readChunk(info.content, chunk.index) }
    }
    const { dispute } = await device.dispute(args)
    return this.settle(purchase, dispute)
  }

  async seed (offer: Signed<Offer>): Promise<void> {
    const cid = offer.body.terms.content.toString()
    await this.init.market.content.addOffer(offer)
    await this.init.market.content.setServing(cid, true)
    await this.init.discovery.announce(cid, keywordsOf(offer.body.title, ...offer.body.tags), { offers: [signedId(offer).toString()] })
  }

  private async settle (purchase: string, settlement: Uint8Array): Promise<SettlementResult> {
    const info = await this.purchaseInfo(purchase)
    const offer = await this.init.market.knownOffer(info.offer)
    const escrows: SettlementResult['escrows'] = []
    for (const j of info.accepted) {
      const peer = offer.body.terms.escrows[j - 1]!.peer
      try {
        const answer = await this.redial(`escrow ${j}`, AbortSignal.timeout(ESCROW_TIMEOUT_MS), async s => requestSettle({ connectionManager: this.init.streams }, peerIdFromString(peer), settlement, { signal: s }))
        escrows.push({ j, peer, state: answer.state, refused: answer.refused, reason: answer.reason })
      } catch (err: any) {
        escrows.push({ j, peer, error: `${String(err.code ?? 'ERR')}: ${String(err.message)}` })
      }
    }
    return { purchase, escrows, price: offer.body.terms.price, currency: offer.body.terms.currency }
  }

  /** The device's record of a purchase, or ERR_UNKNOWN_PURCHASE */
  private async purchaseInfo (purchase: string): Promise<PurchaseInfo> {
    try {
      return await this.init.device().purchase({ purchase })
    } catch (err: any) {
      if (err.code === 'ERR_UNKNOWN_PURCHASE') throw new BuyError(`no purchase ${purchase} on this device`, 'ERR_UNKNOWN_PURCHASE')
      throw err
    }
  }

  private async fetchLicence (offer: Signed<Offer>): Promise<Uint8Array | undefined> {
    try {
      const certs = await this.init.device().certificates()
      // an open offer sells without its seller: one try, as the seller is often offline
      const ask = async (signal: AbortSignal): Promise<unknown> => requestLicence({ connectionManager: this.init.streams }, peerIdFromString(offer.body.terms.seller), {
        offer: signedId(offer), signing: certs.signing, encryption: certs.encryption
      }, { signal })
      const signal = AbortSignal.timeout(LICENCE_TIMEOUT_MS)
      const licence = offer.body.shares.length === 0 ? await this.redial('the seller', signal, ask) : await ask(signal)
      return encodeObject(licence)
    } catch (err: any) {
      if (offer.body.shares.length === 0) {
        // the seller answered and refused (a revoked device, say): its reason, not "offline"
        if (err instanceof RemoteError) throw new BuyError(`the seller refused a licence for this device: ${String(err.message)}`, err.code)
        throw new BuyError(`the seller is unreachable and sells device-bound licences only (${String(err.code ?? err.message)})`, 'ERR_SELLER_OFFLINE')
      }
      this.init.log('no licence from the seller (%s): buying the open offer', err.code ?? err.message)
      return undefined
    }
  }

  /**
   * Buys shares until t passed the device's check. The first t − have escrows of the
   * offer's order are asked at once; each one that is dead or answers wrongly (refunded
   * by its fraud proof) hands its place to the next escrow in that order.
   */
  private async payEscrows (offer: Signed<Offer>, purchase: string, progress: (p: BuyProgress) => void, checks: Map<number, Promise<void>>, steps: ShareTimings[], signal: AbortSignal, reserved: number[], refused: Set<number>): Promise<BuyResult['escrows']> {
    const device = this.init.device()
    const began = performance.now()
    const { terms } = offer.body
    const state = await device.purchase({ purchase })
    const outcomes: BuyResult['escrows'] = state.accepted.map(j => ({ j, peer: terms.escrows[j - 1]!.peer, outcome: 'accepted' }))
    let have = state.accepted.length
    // those holding the price first, then the others in the seller's order (its preferred
    // escrows first), asked without a reservation only if a reserved one fails; never one
    // that refused to reserve
    const candidates = [...reserved, ...terms.escrows.map((_, i) => i + 1).filter(j => !reserved.includes(j))]
      .filter(j => !state.accepted.includes(j) && !state.faulty.includes(j) && !refused.has(j))
      .map(j => ({ j, peer: terms.escrows[j - 1]!.peer }))
    // the device signs the first requests in one go (one sealed write) while the escrows are checked
    const first = candidates.slice(0, Math.max(0, terms.t - have)).map(c => c.j)
    const batch = first.length > 1
      ? device.requestShares({ purchase, js: first }).then(r => r.requests, (err: any) => { this.init.log('batched requests failed: %s', err.code ?? err.message) })
      : Promise.resolve(undefined)
    const prepared = async (j: number): Promise<Uint8Array | undefined> => {
      const i = first.indexOf(j)
      return i < 0 ? undefined : (await batch)?.[i]
    }
    // one lane per missing share: a lane ends with its share bought, or when no escrow is left
    const lane = async (): Promise<void> => {
      for (let next = candidates.shift(); next != null; next = candidates.shift()) {
        signal?.throwIfAborted()
        const step: ShareTimings = { j: next.j }
        steps.push(step)
        const { j, peer } = next
        const checked = checks.get(j) ?? this.checkEscrow(offer, j, signal)
        const tell = (state: EscrowState, code?: string): void => {
          progress({ phase: 'escrow', j, peer, state, ...(code != null ? { code } : {}), have, need: terms.t })
        }
        const outcome = await this.buyShare(offer, purchase, j, checked, prepared(j), (name) => {
          step[name] = performance.now() - began
          if (name === 'requested') tell('asked')
          else if (name === 'answered') tell('held')
        }, signal)
        if (outcome.accepted != null) have = Math.max(have, outcome.accepted)
        outcomes.push({ j, peer, outcome: outcome.outcome })
        if (outcome.outcome === 'accepted') tell('answered')
        else tell('refused', outcome.reason ?? REFUSAL_CODES[outcome.outcome])
        if (outcome.outcome === 'accepted') return
      }
    }
    await Promise.all(Array.from({ length: Math.max(0, terms.t - have) }, lane))
    if (have < terms.t) throw new BuyError(`${have} of ${terms.t} escrows answered; run buy again to retry (the purchase stays open, nothing is paid twice)`, 'ERR_ESCROWS_UNAVAILABLE')
    outcomes.sort((a, b) => a.j - b.j)
    return outcomes
  }

  /** The escrow of share j is the one the offer names, with the key the share was wrapped for, certified by the agency */
  private async checkEscrow (offer: Signed<Offer>, j: number, signal?: AbortSignal): Promise<void> {
    const escrow = offer.body.terms.escrows[j - 1]!
    // the agency's list is fetched again here when the one held is stale (after a restart):
    // a failure to reach either the escrow or the agency is tried again within the time
    await this.redial(`escrow ${j}`, timeoutSignal(ESCROW_TIMEOUT_MS, signal), async s => {
      const info = await requestEscrowInfo({ connectionManager: this.init.streams }, peerIdFromString(escrow.peer), { signal: s })
      if (info.peer !== escrow.peer || !bytesEqual(info.n, escrow.n)) throw new BuyError('it is not the escrow the offer names', 'ERR_BAD_CERT')
      await this.init.market.trust.verifyEscrow(info, { signal: s })
    })
  }

  /** One escrow's share: its identity checked, the device's request, the answer judged by the device */
  private async buyShare (offer: Signed<Offer>, purchase: string, j: number, checked: Promise<void>, prepared: Promise<Uint8Array | undefined>, mark: (step: Exclude<keyof ShareTimings, 'j'>) => void, signal?: AbortSignal): Promise<{ outcome: 'accepted' | 'fraud-refunded' | 'fraud-unrefunded' | 'unavailable', accepted?: number, reason?: string }> {
    const device = this.init.device()
    const escrow = offer.body.terms.escrows[j - 1]!
    const target = peerIdFromString(escrow.peer)
    const timeout = (): AbortSignal => timeoutSignal(ESCROW_TIMEOUT_MS, signal)
    try {
      await checked
      mark('checked')
      const request = (await prepared) ?? (await device.requestShare({ purchase, j })).request
      mark('requested')
      // the same request again is answered from the escrow's hold, never charged twice
      const answer = await this.redial(`escrow ${j}`, timeout(), async s => requestUnblind({ connectionManager: this.init.streams }, target, request, { signal: s }))
      mark('answered')
      const verdict = await device.acceptAnswer({ purchase, j, answer })
      mark('judged')
      if (verdict.accepted) return { outcome: 'accepted', accepted: verdict.have }
      // the escrow's own signed answer proves the fault: claim the refund, buy the share elsewhere
      try {
        const settled = await requestSettle({ connectionManager: this.init.streams }, target, verdict.fraud, { signal: timeout() })
        if (settled.state === 'refunded') return { outcome: 'fraud-refunded' }
      } catch (err: any) {
        this.init.log('fraud refund from %s failed: %s', escrow.peer, err.code ?? err.message)
      }
      return { outcome: 'fraud-unrefunded' }
    } catch (err: any) {
      if (signal?.aborted === true) throw err
      this.init.log('escrow %d (%s) unavailable: %s', j, escrow.peer, err.code ?? err.message)
      return { outcome: 'unavailable', reason: typeof err.code === 'string' ? err.code : undefined }
    }
  }

  /** Manifest, then every missing chunk from the content's providers in parallel */
  private async download (offer: Signed<Offer>, progress: (p: BuyProgress) => void, from: string[] | undefined, signal: AbortSignal, order: StoredOrder, gate: DownloadGate): Promise<{ resumedFrom: number, dropped: BuyResult['dropped'], sources: BuyResult['sources'] }> {
    const { market, discovery } = this.init
    const cid = offer.body.terms.content
    const content = cid.toString()
    const dropped: BuyResult['dropped'] = []
    if (await market.content.isComplete(content)) {
      const chunkCount = (await market.content.manifest(content))!.chunkCount
      gate.manifestStored()
      order.begin(chunkCount, [])
      return { resumedFrom: chunkCount, dropped, sources: [] }
    }
    const providers: Array<{ id: string, address: PeerId | Multiaddr[] }> = []
    if (from != null && from.length > 0) {
      // the buyer named its providers: dialled by peer id, the peer store knows their addresses
      for (const id of new Set(from)) providers.push({ id, address: peerIdFromString(id) })
    } else {
      for await (const p of discovery.findProviders(cid, { limit: 20, timeoutMs: 10_000, signal })) {
        if (p.peerId !== this.init.peerId) providers.push({ id: p.peerId, address: this.addressOf(p) })
      }
      if (!providers.some(p => p.id === offer.body.terms.seller)) providers.push({ id: offer.body.terms.seller, address: peerIdFromString(offer.body.terms.seller) })
    }
    const streams = { connectionManager: this.init.streams }
    if ((await market.content.manifest(content)) == null) {
      let stored = false
      for (const p of providers) {
        try {
          await market.content.putManifest(await fetchManifest(streams, p.address, cid, { signal: AbortSignal.timeout(15_000) }), content)
          stored = true
          break
        } catch (err: any) {
          this.init.log('no manifest from %s: %s', p.id, err.code ?? err.message)
        }
      }
      if (!stored) throw new BuyError(`no provider of ${content} answered`, 'ERR_NO_PROVIDERS')
    }
    const manifest = (await market.content.manifest(content))!
    gate.manifestStored()
    try {
      await gate.opened(signal)
    } catch (err) {
      await market.content.releaseWriter(content)
      throw err
    }
    const missing = await market.content.missing(content)
    order.begin(manifest.chunkCount, missing)
    const total = manifest.size
    // plaintext bytes of chunk i: the last one is short
    const plainBytes = (i: number): number => Math.min(manifest.chunkSize, total - i * manifest.chunkSize)
    let bytesDone = total - missing.reduce((n, i) => n + plainBytes(i), 0)
    // a resumed download starts where it stopped
    if (missing.length < manifest.chunkCount) progress({ phase: 'download', bytes: bytesDone, total, providers: providers.length })
    // small enough that every stream of every provider gets a share of the work, at most RANGE
    // chunks; with several providers, TRIAL_RANGE_BYTES until the trim below has settled
    const size = Math.max(1, Math.min(RANGE, MAX_RANGE, Math.ceil(missing.length / (providers.length * STREAMS_PER_PROVIDER * 2))))
    const trial = providers.length > 1 ? Math.max(1, Math.min(size, Math.floor(TRIAL_RANGE_BYTES / manifest.chunkSize))) : size
    const ranges = splitRanges(missing, trial)
    const alive = new Set(providers.map(p => p.id))
    const missingBytes = missing.length * manifest.chunkSize
    const delivered = new Map<string, number>()
    const trim = new ProviderTrim({ providers: providers.map(p => p.id), windowBytes: Math.max(TRIM_WINDOW_MIN_BYTES, Math.ceil(missingBytes / 16)), now: performance.now() })
    const running: Array<Promise<void>> = []
    let failure: unknown
    const launch = (p: { id: string, address: PeerId | Multiaddr[] }): void => {
      for (let i = 0; i < STREAMS_PER_PROVIDER; i++) running.push(worker(p).catch(err => { failure ??= err }))
    }
    // each provider works through the shared queue; a failed range goes back for another provider
    const worker = async (p: { id: string, address: PeerId | Multiaddr[] }): Promise<void> => {
      while (alive.has(p.id) && trim.active.has(p.id) && ranges.length > 0 && failure == null) {
        signal?.throwIfAborted()
        const range = takeRange(ranges, trim.settled ? size : 1)!
        let got = 0
        try {
          await fetchChunks(streams, p.address, cid, range, async (index, data) => {
            // a stopped buy writes nothing more, not even chunks that had already arrived
            signal?.throwIfAborted()
            await market.content.writeChunk(content, index, data)
            order.add(index)
            got++
            bytesDone += plainBytes(index)
            progress({ phase: 'download', bytes: bytesDone, total, providers: alive.size, provider: p.id })
            const bytes = data.reduce((n, piece) => n + piece.length, 0)
            delivered.set(p.id, (delivered.get(p.id) ?? 0) + bytes)
            const decision = trim.delivered(p.id, bytes, performance.now())
            if (decision?.rest != null) this.init.log('resting provider %s: the download is no slower without it', decision.rest)
            if (decision?.recall != null) {
              this.init.log('calling provider %s back: the download was slower without it', decision.recall)
              launch(providers.find(q => q.id === decision.recall)!)
            }
          }, { signal: timeoutSignal(60_000, signal) })
        } catch (err: any) {
          if (got < range.count) ranges.push({ from: range.from + got, count: range.count - got })
          signal?.throwIfAborted()
          // its other stream may have dropped it already
          if (!alive.delete(p.id)) continue
          trim.remove(p.id)
          const reason = err instanceof BadChunkError ? 'served a chunk that does not match the manifest' : String(err.code ?? err.message)
          this.init.log('dropping provider %s: %s', p.id, reason)
          dropped.push({ provider: p.id, reason })
          progress({ phase: 'provider-dropped', provider: p.id, reason })
        }
      }
    }
    // a range given back by a failing provider goes to those still alive, round after round
    // (rested providers too, once no active one is left); each provider serves several
    // ranges at once so no round trip leaves its link idle
    try {
      while (ranges.length > 0 && alive.size > 0 && failure == null) {
        if (!providers.some(p => alive.has(p.id) && trim.active.has(p.id))) trim.recallAll(alive)
        for (const p of providers) if (alive.has(p.id) && trim.active.has(p.id)) launch(p)
        // a provider called back mid-round adds its workers to this round
        while (running.length > 0) await running.shift()
      }
      if (failure != null) throw failure
    } catch (err) {
      await market.content.releaseWriter(content)
      throw err
    }
    if (ranges.length > 0) {
      await market.content.releaseWriter(content)
      const why = dropped.map(d => `${d.provider}: ${d.reason}`).join('; ')
      throw new BuyError(`${ranges.reduce((n, r) => n + r.count, 0)} chunks are still missing: no provider left (${why}); run buy again to resume`, 'ERR_NO_PROVIDERS')
    }
    await market.content.markComplete(content)
    const sources = [...delivered].map(([provider, bytes]) => ({ provider, bytes, rested: alive.has(provider) && !trim.active.has(provider) }))
    return { resumedFrom: manifest.chunkCount - missing.length, dropped, sources }
  }

  private addressOf (provider: { peerId: string, multiaddrs: string[] }): PeerId | Multiaddr[] {
    return providerAddress(provider)
  }
}
