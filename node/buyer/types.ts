// The buyer's exported shapes: what a search, a quote, a buy and a settlement answer.
import type { Logger } from '@libp2p/interface'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { DeviceClient } from '../device/client.ts'
import type { Discovery } from '../discovery/discovery.ts'
import type { Market } from '../market/market.ts'
import type { BuyProgress } from '../control/progress.ts'

export type { BuyProgress, PlayProgress } from '../control/progress.ts'

export interface BuyerInit {
  peerId: string
  market: Market
  discovery: Discovery
  streams: StreamOpener
  device: () => DeviceClient
  log: Logger
  /** the node's setting for the bytes of chunks a purchase holds in flight (read at each buy; absent: the default) */
  inflightBytes?: () => Promise<number | undefined>
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
  /** the bytes of chunks this buy could hold between asking a provider and handing them on */
  inflightBudgetBytes: number
  /** the most bytes of chunks it held at once */
  peakInflightBytes: number
  /** buffers the download received its chunks into, each reused chunk after chunk: bounded by the budget, not by the work's size */
  chunkBuffers: number
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
  /** the bytes of chunks in flight for this buy, over the node's setting */
  inflightBytes?: number
  signal?: AbortSignal
  onProgress?: (p: BuyProgress) => void
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

/** An escrow's answer to the buyer: accepted, or why its share must be bought elsewhere */
export type EscrowOutcome = 'accepted' | 'fraud-refunded' | 'fraud-unrefunded' | 'unavailable'
