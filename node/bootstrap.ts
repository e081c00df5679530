import { randomBytes } from 'node:crypto'
import { KEEP_ALIVE, serviceDependencies, setMaxListeners } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Identify } from '@libp2p/identify'
import type { AbortOptions, ComponentLogger, Connection, Logger, PeerStore, Startable } from '@libp2p/interface'
import type { SingleKadDHT } from '@libp2p/kad-dht'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface BootstrapComponents {
  connectionManager: ConnectionManager
  peerStore: PeerStore
  logger: ComponentLogger
  /** joined through each bootstrap peer that answers */
  dht: SingleKadDHT
  /** asked again while the DHT has not yet taken the bootstrap peer */
  identify: Identify
}

export interface BootstrapInit {
  /** Multiaddrs ending in /p2p/<peer id>. */
  peers: Multiaddr[]
  /** Give up on a bootstrap peer after this long (a node may start before its bootstrap peer). */
  retryForMs?: number
}

/** How long a join waits for the bootstrap peer to enter the routing table */
export const DHT_JOIN_TIMEOUT_MS = 30_000

/** Lookups of random keys per round of a join, and rounds at most (a round repeats only while the table grows) */
export const DHT_JOIN_LOOKUPS = 3
export const DHT_JOIN_ROUNDS = 3

/** While the routing table is still empty, the join asks kad-dht to check the bootstrap peer again this often */
export const DHT_JOIN_RECHECK_MS = 5_000

/**
 * Kademlia's join, once the routing table holds a peer (the bootstrap peer that just
 * answered): kad-dht's refresh, and lookups of random keys, awaited, in rounds while they
 * still find peers.
 * kad-dht's own self-query goes only to peers closer to the node than the one that named
 * them, so a node that joins late through one peer stops after that peer and its
 * neighbour and stays with two peers until the refresh five minutes later (reproduced in a
 * test; the likely cause of 50-node swarms that did not become ready). kad-dht's
 * `refreshRoutingTable` returns before its lookups run, and they could still end at the
 * neighbour on a busy machine (1 test run in 3–6 with the cores taken); each round of our
 * own starts from the peers the last one found.
 */
export async function joinDht (dht: SingleKadDHT, options: Required<AbortOptions>, recheck?: (options: Required<AbortOptions>) => Promise<unknown>): Promise<void> {
  // identify tells kad-dht that the peer speaks its protocol just after the connection
  // opens, and kad-dht adds the peer once it answers a ping; the routing table's public
  // face is its size. Either step can time out on a busy machine, and kad-dht tries again
  // only on a new connection: `recheck` (identify once more) makes it check the peer again.
  let lastCheck = Date.now()
  while (dht.routingTable.size === 0) {
    options.signal.throwIfAborted()
    await new Promise(resolve => setTimeout(resolve, 25))
    if (recheck != null && Date.now() - lastCheck >= DHT_JOIN_RECHECK_MS) {
      lastCheck = Date.now()
      await recheck(options).catch(err => { if (options.signal.aborted) throw err })
    }
  }
  // kad-dht's refresh of every bucket: it returns before its lookups run
  // the DHT gets the signal alone, never a caller's other options
  const { signal } = options
  await dht.refreshRoutingTable({ signal })
  for (let round = 0; round < DHT_JOIN_ROUNDS; round++) {
    const before = dht.routingTable.size
    const keys = Array.from({ length: DHT_JOIN_LOOKUPS }, () => randomBytes(32))
    await Promise.all(keys.map(async key => {
      try {
        for await (const _ of dht.getClosestPeers(key, { signal })) {}
      } catch (err) {
        // a lookup that failed found no one; the others and the refresh go on
        if (options.signal.aborted) throw err
      }
    }))
    if (dht.routingTable.size <= before) break
  }
}

/**
 * Dials the configured bootstrap peers until each answers, with backoff, and
 * tags them keep-alive so libp2p's reconnect queue redials them if they drop;
 * then joins the DHT through each one that answered (see joinDht).
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
  readonly [serviceDependencies] = ['@libp2p/kad-dht', '@libp2p/identify']

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
    let connection: Connection | undefined
    while (!signal.aborted) {
      try {
        connection = await this.components.connectionManager.openConnection(address, { signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]) })
        this.log('joined through %a', address)
        break
      } catch (err) {
        if (signal.aborted) throw err
        this.log('bootstrap dial to %a failed, retrying in %d ms - %e', address, delay, err)
        await new Promise(resolve => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, 5000)
      }
    }
    if (this.controller == null || connection == null || signal.aborted) return
    const joinSignal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(DHT_JOIN_TIMEOUT_MS)])
    setMaxListeners(Infinity, joinSignal)
    const joined = connection
    try {
      await joinDht(this.components.dht, { signal: joinSignal }, async options => this.components.identify.identify(joined, options))
      this.log('joined the DHT through %p', peerId)
    } catch (err) {
      // the peer answered; only the refresh did not happen (kad-dht's own runs later)
      if (this.controller.signal.aborted !== true) this.log.error('could not refresh the DHT routing table through %p - %e', peerId, err)
    }
  }
}
