import { KEEP_ALIVE, setMaxListeners } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { ComponentLogger, Logger, PeerStore, Startable } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface BootstrapComponents {
  connectionManager: ConnectionManager
  peerStore: PeerStore
  logger: ComponentLogger
}

export interface BootstrapInit {
  /** Multiaddrs ending in /p2p/<peer id>. */
  peers: Multiaddr[]
  /** Give up on a bootstrap peer after this long (a node may start before its bootstrap peer). */
  retryForMs?: number
}

/**
 * Dials the configured bootstrap peers until each answers, with backoff, and
 * tags them keep-alive so libp2p's reconnect queue redials them if they drop.
 * (@libp2p/bootstrap dials once and gives up, which loses a swarm whose nodes
 * start in parallel.)
 */
export class BootstrapDialer implements Startable {
  private readonly components: BootstrapComponents
  private readonly peers: Multiaddr[]
  private readonly retryForMs: number
  private readonly log: Logger
  private controller?: AbortController

  constructor (components: BootstrapComponents, init: BootstrapInit) {
    this.components = components
    this.peers = init.peers
    this.retryForMs = init.retryForMs ?? 120_000
    this.log = components.logger.forComponent('keyfair:bootstrap')
  }

  readonly [Symbol.toStringTag] = 'keyfair:bootstrap'

  start (): void {
    this.controller = new AbortController()
    setMaxListeners(Infinity, this.controller.signal)
  }

  afterStart (): void {
    for (const address of this.peers) {
      void this.join(address).catch(err => { this.log.error('bootstrap peer %a unreachable - %e', address, err) })
    }
  }

  stop (): void {
    this.controller?.abort()
  }

  private async join (address: Multiaddr): Promise<void> {
    const id = address.getComponents().findLast(c => c.name === 'p2p')?.value
    if (id == null) return
    const peerId = peerIdFromString(id)
    await this.components.peerStore.merge(peerId, {
      multiaddrs: [address],
      tags: { [`${KEEP_ALIVE}-bootstrap`]: { value: 50 } }
    })
    const signal = AbortSignal.any([AbortSignal.timeout(this.retryForMs), this.controller?.signal ?? new AbortController().signal])
    setMaxListeners(Infinity, signal)
    let delay = 100
    while (!signal.aborted) {
      try {
        await this.components.connectionManager.openConnection(address, { signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]) })
        this.log('joined through %a', address)
        return
      } catch (err) {
        if (signal.aborted) throw err
        this.log('bootstrap dial to %a failed, retrying in %d ms - %e', address, delay, err)
        await new Promise(resolve => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, 5000)
      }
    }
  }
}
