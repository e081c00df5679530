import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { BootstrapDialer } from './bootstrap.ts'
import type { BootstrapComponents } from './bootstrap.ts'
import { keyedNoiseCrypto } from './noise-crypto.ts'
import { InboundBudget } from '../protocols/toolkit/budget.ts'
import type { InboundBudgetComponents } from '../protocols/toolkit/budget.ts'
import { parseBootstrapAddress, parseListenAddress } from './config.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { InboundBudgetSettings } from '../protocols/toolkit/budget.ts'
import type { Identify } from '@libp2p/identify'
import type { KadDHT, KadDHTComponents, KadDHTInit, SingleKadDHT } from '@libp2p/kad-dht'
import type { PrivateKey, Libp2p, ServiceMap } from '@libp2p/interface'
import type { ServiceFactoryMap } from 'libp2p'
import type { Ping } from '@libp2p/ping'

export const DHT_PROTOCOL = '/keyfair/kad/1.0.0'

// a type alias (not an interface) so it satisfies libp2p's ServiceMap index signature
export type BaseServices = {
  identify: Identify
  ping: Ping
  dht: SingleKadDHT
  bootstrap: BootstrapDialer
  pubsub: GossipSub
  /** the ceiling on inbound data buffered for unfinished frames, shared by every protocol */
  inboundBudget: InboundBudget
}

/**
 * keyfair's own services: each factory is given libp2p's components, among them the base
 * services and its sibling services by name.
 */
export type KeyfairServiceFactories<S extends ServiceMap> = Pick<ServiceFactoryMap<BaseServices & S>, keyof S>

export interface Libp2pInit<S extends ServiceMap> {
  privateKey: PrivateKey
  listen: string[]
  bootstrap: string[]
  /** keyfair's own services (discovery, roles), started and stopped with libp2p. */
  services: KeyfairServiceFactories<S>
  /** the inbound budget's settings (defaults: DEFAULT_INBOUND_BUDGET) */
  inbound?: Partial<InboundBudgetSettings>
  /** a full garbage collection, for the budget to give memory back after pressure */
  collectGarbage?: () => void
}

/** Per-stream receive window: 4 MiB still fills a 300 MB/s link at up to ~13 ms round trip */
export const MAX_STREAM_WINDOW_BYTES = 4 * 1024 * 1024

/** Streams a connection may carry before its receiving side has finished upgrading it */
export const MAX_EARLY_STREAMS = 64

/** How often libp2p checks each open connection with a ping */
export const CONNECTION_PING_INTERVAL_MS = 60_000

/**
 * Ping streams one connection may carry at once, each way: libp2p's connection monitor and
 * kad-dht's routing table (a new contact, an old one) ping over the same protocol, and
 * @libp2p/ping's default of one outbound stream failed the second; when that was the
 * monitor's, it aborted the connection.
 */
export const PING_STREAMS_PER_CONNECTION = 4

/**
 * Largest pubsub frame a peer may send: one signed revocation list (1 MiB at most) with
 * the message's topic, sender key and signature. Pubsub carries nothing bigger.
 */
export const MAX_PUBSUB_FRAME_BYTES = 1024 * 1024 + 16 * 1024

/** kad-dht's factory, typed as what it builds: one DHT (not a LAN/WAN pair), with its routing table */
function singleKadDHT (init: KadDHTInit): (components: KadDHTComponents) => SingleKadDHT {
  const create = kadDHT(init)
  return components => {
    const dht = create(components)
    if (!isSingleKadDHT(dht)) throw new TypeError('kad-dht built a DHT without a routing table')
    return dht
  }
}

function isSingleKadDHT (dht: KadDHT): dht is SingleKadDHT {
  return 'routingTable' in dht
}

/**
 * One keyfair libp2p node: TCP, noise, yamux, identify, ping and kad-dht in
 * server mode under keyfair's private DHT protocol, the bootstrap dialer, gossipsub and
 * the inbound budget, then keyfair's own services. Built stopped; the caller
 * starts it so listen errors surface from `start()`.
 */
export async function createKeyfairLibp2p<S extends ServiceMap> (init: Libp2pInit<S>): Promise<Libp2p<BaseServices & S>> {
  const listen = init.listen.map(a => parseListenAddress(a).toString())
  const peers = init.bootstrap.map(parseBootstrapAddress)
  const base: ServiceFactoryMap<BaseServices> = {
    identify: identify(),
    ping: ping({ maxInboundStreams: PING_STREAMS_PER_CONNECTION, maxOutboundStreams: PING_STREAMS_PER_CONNECTION }),
    dht: singleKadDHT({
      protocol: DHT_PROTOCOL,
      clientMode: false,
      // the default mapper drops private addresses, which leaves a loopback DHT empty
      peerInfoMapper: passthroughMapper
    }),
    bootstrap: (components: BootstrapComponents) => new BootstrapDialer(components, { peers }),
    // carries the agencies' signed revocation lists (node/agency/crl-feed.ts); what it
    // delivers is checked against the agency root, so the gossip itself is not trusted
    pubsub: gossipsub({
      // the agency publishes whether or not anyone listens yet
      allowPublishToZeroTopicPeers: true,
      maxInboundDataLength: MAX_PUBSUB_FRAME_BYTES
    }),
    inboundBudget: (components: InboundBudgetComponents) => new InboundBudget(components, { ...init.inbound, collect: init.collectGarbage })
  }
  const services: ServiceFactoryMap<BaseServices & S> = { ...base, ...init.services }
  return createLibp2p<BaseServices & S>({
    start: false,
    privateKey: init.privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: keyedNoiseCrypto() })],
    streamMuxers: [yamux({
      // streams the remote opens before this side has finished upgrading the connection; past
      // the default 10, yamux aborts the whole connection: 17 unblind requests sent at once
      // on a new connection were all reset on a busy machine, where the listener upgrades
      // slowly. Each such stream holds at most its initial 256 KiB window.
      maxEarlyStreams: MAX_EARLY_STREAMS,
      // a provider may run at most this far ahead of what the buyer has hashed and written
      // (a frame reader pauses its stream, which then grants no more window); yamux's 16 MiB
      // default let two chunk streams hold ~30 MB more at a buyer's peak. A paused stream
      // keeps what still arrives, up to one window: its buffer limit must hold that much.
      streamOptions: { maxStreamWindowSize: MAX_STREAM_WINDOW_BYTES, maxReadBufferLength: MAX_STREAM_WINDOW_BYTES }
    })],
    connectionMonitor: {
      // libp2p pings every connection every 10 s; a swarm node holds a connection to most
      // peers, and those pings (a stream each: multistream-select, window updates, close)
      // were most of an idle node's CPU. A dead TCP peer is still found within a minute.
      pingInterval: CONNECTION_PING_INTERVAL_MS
    },
    connectionManager: {
      // every keyfair peer of a local swarm shares 127.0.0.1: without this the
      // per-host inbound rate limit (5/s) refuses a swarm's parallel joins
      allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
    },
    services
  })
}
