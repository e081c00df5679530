import type { CrlFeed } from '../agency/crl-feed.ts'
import type { Discovery } from '../discovery/discovery.ts'
import type { Market } from '../market/market.ts'
import type { DeviceClient } from '../device/client.ts'
import type { RoleName } from '../config.ts'
import type { Repo } from '../repo.ts'
import type { UnlockedKeys } from '../keys/keystore.ts'
import type { InboundBudget } from '../../protocols/toolkit/budget.ts'
import { serviceDependencies } from '@libp2p/interface'
import { CRL_FEED_CAPABILITY } from '../agency/crl-feed.ts'
import { DISCOVERY_CAPABILITY } from '../discovery/discovery.ts'
import { MARKET_CAPABILITY } from '../market/market.ts'
import { INBOUND_BUDGET_CAPABILITY } from '../../protocols/toolkit/budget.ts'
import type { ComponentLogger, Logger, PeerId, PeerStore, PrivateKey, Startable } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'

/** What a role reads from libp2p's components: libp2p's own and keyfair's services by name */
export interface RoleComponents {
  peerId: PeerId
  /** the node's libp2p key: signs what the role answers (escrow answers, offers) */
  privateKey: PrivateKey
  registrar: Registrar
  connectionManager: ConnectionManager
  peerStore: PeerStore
  logger: ComponentLogger
  discovery: Discovery
  /** agencies' revocation lists, pushed over pubsub */
  crl: CrlFeed
  /** content and offers this node serves, the agency it trusts */
  market: Market
  /** the node's budget for inbound data, shared by the protocols of every role */
  inboundBudget: InboundBudget
}

/** What a role is given by its node, beside libp2p's components */
export interface RoleNode {
  /** The node's repo: roles keep their own state under it (e.g. `<repo>/agency/`). */
  repo: Repo
  /** the node's sealed device (buyer nodes; throws elsewhere) */
  device: () => DeviceClient
  /** the repo's unlocked key store (agency, escrow and seller nodes; throws elsewhere) */
  keys: () => UnlockedKeys
}

/** A protocol a role serves: a component with its protocol id. */
export interface ProtocolService extends Startable {
  readonly protocol: string
}

/**
 * A role is a set of protocol services plus whatever the role advertises.
 * Starting a role registers its protocols; stopping unregisters them.
 */
export abstract class Role implements Startable {
  abstract readonly name: RoleName
  protected readonly components: RoleComponents
  protected readonly node: RoleNode
  protected readonly services: ProtocolService[] = []
  protected readonly log: Logger
  private started = false

  constructor (components: RoleComponents, node: RoleNode, component: string) {
    this.components = components
    this.node = node
    this.log = components.logger.forComponent(`keyfair:role:${component}`)
  }

  get [Symbol.toStringTag] (): string {
    return `keyfair:role:${this.name}`
  }

  readonly [serviceDependencies] = [DISCOVERY_CAPABILITY, MARKET_CAPABILITY, CRL_FEED_CAPABILITY, INBOUND_BUDGET_CAPABILITY]

  get protocols (): string[] {
    return this.services.map(s => s.protocol)
  }

  isStarted (): boolean {
    return this.started
  }

  async start (): Promise<void> {
    for (const service of this.services) await service.start()
    this.started = true
    this.log('started, serving %s', this.protocols.join(', ') || 'no protocols')
  }

  async stop (): Promise<void> {
    for (const service of [...this.services].reverse()) await service.stop()
    this.started = false
  }
}
