import { serviceCapabilities } from '@libp2p/interface'
import { BudgetExceededError, FrameStalledError } from '../errors.ts'
import type { KeyfairError } from '../errors.ts'
import type { ComponentLogger, Logger, Startable } from '@libp2p/interface'

/**
 * How much inbound data a node buffers for frames it has not finished with. The per-stream
 * and per-connection limits of libp2p and yamux bound one stream; these bound them all.
 */
export interface InboundBudgetSettings {
  /** bytes of unfinished frames buffered across every stream and connection of the node */
  maxBytes: number
  /** bytes one peer may have buffered, over all its connections and streams */
  maxPeerBytes: number
  /** above this share of maxBytes memory is tight, and stalled frames are dropped */
  tightFraction: number
  /** a frame that received nothing for this long is stalled (far below any read timeout) */
  stallMs: number
  /** how often stalled frames are looked for */
  sweepMs: number
}

export const DEFAULT_INBOUND_BUDGET: InboundBudgetSettings = {
  // room for one chunk dispute (a 16 MiB chunk and its manifest) beside everyone else's
  // small requests: what an attack adds to an escrow's ~160 MB stays well under as much again
  maxBytes: 32 * 1024 * 1024,
  maxPeerBytes: 20 * 1024 * 1024,
  tightFraction: 0.5,
  stallMs: 2000,
  sweepMs: 500
}

/** Checks settings from a config file: positive integers, a fraction in (0, 1] */
export function inboundBudgetSettings (value: Partial<InboundBudgetSettings> = {}): InboundBudgetSettings {
  const settings = { ...DEFAULT_INBOUND_BUDGET, ...value }
  for (const key of ['maxBytes', 'maxPeerBytes', 'stallMs', 'sweepMs'] as const) {
    const n = settings[key]
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`inbound budget ${key} must be a positive integer`)
  }
  if (typeof settings.tightFraction !== 'number' || !(settings.tightFraction > 0 && settings.tightFraction <= 1)) {
    throw new RangeError('inbound budget tightFraction must be in (0, 1]')
  }
  if (settings.maxPeerBytes > settings.maxBytes) throw new RangeError('inbound budget maxPeerBytes must not exceed maxBytes')
  return settings
}

/** What the inbound budget provides to the services that declare they depend on it */
export const INBOUND_BUDGET_CAPABILITY = 'keyfair:inbound-budget'

export interface InboundBudgetComponents {
  logger: ComponentLogger
}

export interface InboundBudgetInit extends Partial<InboundBudgetSettings> {
  /**
   * A full garbage collection (V8's gc). Bytes a hostile peer made this node take are
   * garbage once its streams are reset, but an idle process may hold them for minutes;
   * after enough of them, or once the pressure is over, the budget collects them.
   */
  collect?: () => void
}

/** Collections are at least this far apart */
const COLLECT_INTERVAL_MS = 1000

/** One stream's account with the budget; its owner reports bytes in and out. */
export interface BudgetLease {
  /** bytes that arrived; false when the stream has just been dropped to stay in budget */
  charge: (bytes: number) => boolean
  /** bytes the reader has finished with */
  release: (bytes: number) => void
  /** whether a frame is under way (a stalled one may be dropped) */
  framing: (open: boolean) => void
  /** the stream ended: everything it held is released */
  close: () => void
}

interface Lease {
  peer: PeerAccount
  bytes: number
  open: boolean
  lastByteAt: number
  closed: boolean
  drop: (err: KeyfairError) => void
}

interface PeerAccount {
  id: string
  bytes: number
  leases: Set<Lease>
}

export interface InboundBudgetStats {
  /** bytes buffered now */
  bytes: number
  /** the most buffered at once since start */
  peak: number
  peers: number
  streams: number
  /** streams reset because their peer, or the node, was over budget */
  overBudget: number
  /** garbage collections run after pressure */
  collections: number
  /** stalled frames dropped while memory was tight */
  stalled: number
}

/**
 * A resource budget for inbound data, one per node, handed to every service that reads
 * frames. Each stream takes a lease and charges the bytes that arrive for it until its
 * reader has taken them. Over the node's ceiling, the peer holding the most loses its
 * largest stream first, until the rest fit: a peer within its fair share is not reset to
 * make room for one above it. A peer over its own share loses its largest stream at once.
 * While usage is above the tight mark, a frame that stopped arriving is dropped after
 * `stallMs` instead of holding its bytes until the read timeout.
 */
export class InboundBudget implements Startable {
  readonly settings: InboundBudgetSettings
  private readonly log: Logger
  private readonly peers = new Map<string, PeerAccount>()
  private bytes = 0
  private peak = 0
  private streams = 0
  private overBudget = 0
  private stalled = 0
  private timer?: ReturnType<typeof setInterval>
  private readonly collect?: () => void
  /** bytes charged since the last collection */
  private churn = 0
  /** whether streams were dropped or memory was tight since the last collection */
  private pressed = false
  private collectedAt = 0
  private collections = 0

  readonly [Symbol.toStringTag] = 'keyfair:inbound-budget'
  readonly [serviceCapabilities] = [INBOUND_BUDGET_CAPABILITY]

  constructor (components: InboundBudgetComponents, init: InboundBudgetInit = {}) {
    this.log = components.logger.forComponent('keyfair:budget')
    const { collect, ...settings } = init
    this.settings = inboundBudgetSettings(settings)
    this.collect = collect
  }

  start (): void {
    this.timer = setInterval(() => { this.sweep() }, this.settings.sweepMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  stats (): InboundBudgetStats {
    return { bytes: this.bytes, peak: this.peak, peers: this.peers.size, streams: this.streams, overBudget: this.overBudget, stalled: this.stalled, collections: this.collections }
  }

  /** A lease for one inbound stream of `peer`; `drop` resets that stream */
  open (peer: string, drop: (err: KeyfairError) => void): BudgetLease {
    let account = this.peers.get(peer)
    if (account == null) {
      account = { id: peer, bytes: 0, leases: new Set() }
      this.peers.set(peer, account)
    }
    const lease: Lease = { peer: account, bytes: 0, open: false, lastByteAt: Date.now(), closed: false, drop }
    account.leases.add(lease)
    this.streams++
    return {
      charge: bytes => this.charge(lease, bytes),
      release: bytes => { this.release(lease, Math.min(bytes, lease.bytes)) },
      framing: open => {
        lease.open = open
        lease.lastByteAt = Date.now()
      },
      close: () => { this.close(lease) }
    }
  }

  private charge (lease: Lease, bytes: number): boolean {
    if (lease.closed) return false
    lease.bytes += bytes
    lease.peer.bytes += bytes
    this.bytes += bytes
    lease.lastByteAt = Date.now()
    this.churn += bytes
    const { maxBytes, maxPeerBytes } = this.settings
    while (lease.peer.bytes > maxPeerBytes && !lease.closed) {
      this.evict(largest(lease.peer), new BudgetExceededError(`this peer has more than ${maxPeerBytes} bytes of unfinished frames here`))
    }
    while (this.bytes > maxBytes && !lease.closed) {
      // the sum is over the ceiling, so the heaviest peer is over its fair share
      const heaviest = [...this.peers.values()].reduce((a, b) => (b.bytes > a.bytes ? b : a))
      this.evict(largest(heaviest), new BudgetExceededError('this node is over its budget for unfinished frames, and this peer holds the most'))
    }
    // what stays held; one delivery may overshoot the ceiling for as long as this call
    if (this.bytes > this.peak) this.peak = this.bytes
    return !lease.closed
  }

  private evict (lease: Lease | undefined, err: KeyfairError): void {
    if (lease == null) return
    this.overBudget++
    this.pressed = true
    this.log('dropping a stream of %s holding %d bytes: %s', lease.peer.id, lease.bytes, err.code)
    this.close(lease)
    try {
      lease.drop(err)
    } catch (dropErr) {
      this.log.error('resetting a stream over budget failed - %e', dropErr)
    }
  }

  private release (lease: Lease, bytes: number): void {
    if (bytes <= 0) return
    lease.bytes -= bytes
    lease.peer.bytes -= bytes
    this.bytes -= bytes
  }

  private close (lease: Lease): void {
    if (lease.closed) return
    this.release(lease, lease.bytes)
    lease.closed = true
    this.streams--
    lease.peer.leases.delete(lease)
    if (lease.peer.leases.size === 0) this.peers.delete(lease.peer.id)
  }

  /**
   * Under pressure, after every half budget of bytes taken in; and once more when the
   * pressure is over and nothing is buffered, so memory comes back within seconds
   */
  private collectGarbage (): void {
    if (this.collect == null || !this.pressed) return
    const now = Date.now()
    if (now - this.collectedAt < COLLECT_INTERVAL_MS) return
    const over = this.bytes === 0
    if (!over && this.churn < this.settings.maxBytes / 2) return
    this.churn = 0
    this.collectedAt = now
    this.collections++
    if (over) this.pressed = false
    this.collect()
  }

  /** While memory is tight, frames that stopped arriving give their bytes back */
  private sweep (): void {
    this.collectGarbage()
    if (this.bytes <= this.settings.maxBytes * this.settings.tightFraction) return
    this.pressed = true
    const before = Date.now() - this.settings.stallMs
    for (const peer of [...this.peers.values()]) {
      for (const lease of [...peer.leases]) {
        if (!lease.open || lease.bytes === 0 || lease.lastByteAt > before) continue
        this.stalled++
        this.log('dropping a stalled frame of %s holding %d bytes', peer.id, lease.bytes)
        this.close(lease)
        try {
          lease.drop(new FrameStalledError(`no byte of this frame for ${this.settings.stallMs} ms while memory is tight`))
        } catch (err) {
          this.log.error('resetting a stalled stream failed - %e', err)
        }
      }
    }
  }
}

function largest (peer: PeerAccount): Lease | undefined {
  let out: Lease | undefined
  for (const lease of peer.leases) if (out == null || lease.bytes > out.bytes) out = lease
  return out
}
