import { createServer } from 'node:net'
import { logger } from '@libp2p/logger'
import { CID } from 'multiformats/cid'
import { CrlFeed } from './agency/crl-feed.ts'
import { AnnouncementStore, announcementMigrations } from './discovery/announcements.ts'
import { Discovery } from './discovery/discovery.ts'
import { parseListenAddress } from './config.ts'
import { ListenError, PortInUseError, RoleNotRunningError } from './errors.ts'
import { createKeyfairLibp2p } from './libp2p.ts'
import { garbageCollector } from './gc.ts'
import { GcMonitor } from './gc-monitor.ts'
import { timeoutSignal } from '../protocols/toolkit/index.ts'
import { createRole } from './roles/index.ts'
import { EscrowRole } from './roles/escrow.ts'
import { DeviceClient } from './device/client.ts'
import { Market } from './market/market.ts'
import { DeviceNotRunningError } from './errors.ts'
import { needsSealedKeys } from './config.ts'
import { KeyStoreLockedError } from './keys/errors.ts'
import { NodeKeyStore } from './keys/keystore.ts'
import { findPlaintextKeys, sealPlaintextKeys } from './keys/plaintext.ts'
import { PassphraseRequiredError } from './passphrase.ts'
import { openDatabase } from './store/database.ts'
import type { RoleName } from './config.ts'
import type { EscrowMode } from './escrow/leadership.ts'
import type { KdfParams, UnlockedKeys } from './keys/keystore.ts'
import type { ProcessMemory } from './gc-monitor.ts'
import type { AnnounceResult, DiscoveryComponents, FindOptions, Provider } from './discovery/discovery.ts'
import type { CrlFeedComponents } from './agency/crl-feed.ts'
import type { MarketComponents } from './market/market.ts'
import type { BaseServices, KeyfairServiceFactories } from './libp2p.ts'
import type { Repo } from './repo.ts'
import type { Role, RoleComponents, RoleNode } from './roles/index.ts'
import type { InboundBudgetSettings } from '../protocols/toolkit/budget.ts'
import type { StreamOpener } from '../protocols/toolkit/service.ts'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { DatabaseSync } from 'node:sqlite'

export interface KeyfairNodeInit {
  repo: Repo
  roles: RoleName[]
  listen: string[]
  bootstrap: string[]
  /**
   * The repo's passphrase: unlocks the key store (required for the agency, escrow and
   * seller roles) and the sealed device (buyer role)
   */
  passphrase?: string
  /** scrypt cost of a key store this start creates (default N=2^17; never below 2^14) */
  keyStoreKdf?: KdfParams
  /** the inbound budget's settings (default: those of the repo's config.json, then the defaults) */
  inbound?: Partial<InboundBudgetSettings>
}

export interface NodeStatus {
  peerId: string
  roles: RoleName[]
  protocols: string[]
  addresses: string[]
  connections: number
  routingTableSize: number
  dhtMode: string
  announcements: number
  uptimeMs: number
  pid: number
  /** the node process's memory and V8's collections since it started */
  memory: ProcessMemory
  version: string
  /** escrow nodes: whether this process answers for the escrow or stands by for another */
  escrow?: { mode: EscrowMode }
}

export interface PeerInfo {
  peerId: string
  addresses: string[]
  direction: string
}

/** A role runs as a libp2p service of its own, under its name */
type RoleServices = { [R in RoleName as `role:${R}`]?: Role }

/** keyfair's own services, beside libp2p's base ones */
// a type alias (not an interface) so it satisfies libp2p's ServiceMap index signature
type NodeServices = { crl: CrlFeed, discovery: Discovery, market: Market } & RoleServices

type KeyfairServices = BaseServices & NodeServices

export const VERSION = '0.1.0'

/**
 * A running keyfair node: libp2p with its roles, discovery and repo state.
 * Created stopped; `start()` takes the repo lock, opens the database and
 * starts libp2p (roles register their protocols then).
 */
export class KeyfairNode {
  readonly repo: Repo
  readonly roles: Role[] = []
  private readonly init: KeyfairNodeInit
  private readonly log = logger('keyfair:node')
  private libp2pNode?: Libp2p<KeyfairServices>
  private db?: DatabaseSync
  private announcements?: AnnouncementStore
  private unlock?: () => Promise<void>
  private sealedDevice?: DeviceClient
  private unlockedKeys?: UnlockedKeys
  private startedAt = 0
  private readonly gc = new GcMonitor()
  /** plaintext key files of an earlier version that this start sealed and removed */
  sealedKeyFiles: string[] = []

  constructor (init: KeyfairNodeInit) {
    this.init = init
    this.repo = init.repo
  }

  /** The running role of this class, typed: `node.role(EscrowRole).escrow` */
  role<T extends Role> (kind: abstract new (...args: never[]) => T): T {
    const found = this.roles.find((r): r is T => r instanceof kind)
    // SellerRole is the seller role: the class names the role it runs
    if (found == null) throw new RoleNotRunningError(kind.name.replace(/Role$/, '').toLowerCase())
    return found
  }

  get libp2p (): Libp2p<KeyfairServices> {
    if (this.libp2pNode == null) throw new Error('node is not started')
    return this.libp2pNode
  }

  get discovery (): Discovery {
    return this.libp2p.services.discovery
  }

  get market (): Market {
    return this.libp2p.services.market
  }

  /** The sealed device process of a buyer node */
  get device (): DeviceClient {
    if (this.sealedDevice == null) throw new DeviceNotRunningError()
    return this.sealedDevice
  }

  /** The repo's key store, unlocked while the node runs (when a role needs it) */
  get keys (): UnlockedKeys {
    if (this.unlockedKeys == null || this.unlockedKeys.locked) throw new KeyStoreLockedError()
    return this.unlockedKeys
  }

  /** Opens streams through libp2p's public API, for protocol clients */
  get streams (): StreamOpener {
    return {
      openStream: async (peer, protocol, options = {}) => this.libp2p.dialProtocol(peer, protocol, {
        signal: options.signal,
        maxOutboundStreams: options.maxOutboundStreams
      }),
      closeConnections: async (peer, options) => this.libp2p.hangUp(peer, { signal: options?.signal })
    }
  }

  async start (): Promise<void> {
    this.unlock = await this.repo.lock()
    this.gc.start()
    try {
      const privateKey = await this.repo.loadIdentity()
      // before anything else is written: a wrong passphrase leaves the repo as it was
      await this.openKeys()
      await assertPortsFree(this.init.listen)
      this.db = openDatabase(this.repo.databaseFile, announcementMigrations)
      this.announcements = new AnnouncementStore(this.db)
      const inbound = this.init.inbound ?? (await this.repo.readConfig()).inbound
      this.libp2pNode = await this.createLibp2p(privateKey, this.announcements, inbound)
      try {
        await this.libp2pNode.start()
      } catch (err) {
        throw listenError(err, this.init.listen)
      }
      if (this.init.roles.includes('buyer')) await this.startDevice()
      this.startedAt = Date.now()
      this.log('started %p with roles %s', this.libp2pNode.peerId, this.init.roles.join(','))
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    await this.sealedDevice?.stop()
    this.sealedDevice = undefined
    await this.libp2pNode?.stop()
    this.db?.close()
    this.db = undefined
    this.announcements = undefined
    this.unlockedKeys?.lock()
    this.unlockedKeys = undefined
    this.gc.stop()
    await this.unlock?.()
    this.unlock = undefined
  }

  /**
   * Unlocks the key store when a role needs it (creating it on the first start), and seals
   * plaintext key files an earlier version left. One scrypt per start.
   */
  private async openKeys (): Promise<void> {
    const passphrase = this.init.passphrase
    const required = needsSealedKeys(this.init.roles)
    const plaintext = await findPlaintextKeys(this.repo.path)
    if (!required && (plaintext.length === 0 || passphrase == null)) return
    if (passphrase == null) throw new PassphraseRequiredError()
    const store = new NodeKeyStore(this.repo.keysDir)
    this.unlockedKeys = await store.exists()
      ? await store.unlock(passphrase)
      : await store.create(passphrase, { kdf: this.init.keyStoreKdf })
    this.sealedKeyFiles = await sealPlaintextKeys(this.repo.path, this.unlockedKeys, this.log)
  }

  private async startDevice (): Promise<void> {
    const device = new DeviceClient({ store: this.repo.deviceDir })
    await device.start()
    this.sealedDevice = device
    const passphrase = this.init.passphrase
    if (passphrase != null && (await device.status()).initialised) {
      await device.unlock({ passphrase })
      this.log('sealed device unlocked')
    }
  }

  status (): NodeStatus {
    const node = this.libp2p
    return {
      peerId: node.peerId.toString(),
      roles: this.roles.map(r => r.name),
      protocols: node.getProtocols(),
      addresses: node.getMultiaddrs().map(ma => ma.toString()),
      connections: node.getConnections().length,
      routingTableSize: node.services.dht.routingTable.size,
      dhtMode: node.services.dht.getMode(),
      announcements: this.announcements?.count() ?? 0,
      uptimeMs: Date.now() - this.startedAt,
      pid: process.pid,
      memory: this.gc.memory(),
      version: VERSION,
      ...this.escrowStatus()
    }
  }

  private escrowStatus (): Pick<NodeStatus, 'escrow'> {
    const role = this.roles.find(r => r instanceof EscrowRole)
    return role instanceof EscrowRole ? { escrow: { mode: role.mode } } : {}
  }

  peers (): PeerInfo[] {
    return this.libp2p.getConnections().map(c => ({
      peerId: c.remotePeer.toString(),
      addresses: [c.remoteAddr.toString()],
      direction: c.direction
    }))
  }

  async announce (contentId: string, keywords: string[], signal?: AbortSignal, offers?: string[]): Promise<AnnounceResult> {
    return this.discovery.announce(contentId, keywords, { signal, offers })
  }

  async find (keyword: string, options: FindOptions = {}): Promise<Provider[]> {
    const found: Provider[] = []
    for await (const provider of this.discovery.findKeyword(keyword, options)) found.push(provider)
    return found
  }

  /**
   * Every provider of a CID in one bare kad-dht query, to its end (or the time budget):
   * no retries, no limit, so it is the baseline keyword search is measured against.
   */
  async findProviders (cid: string, options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Provider[]> {
    const signal = timeoutSignal(options.timeoutMs ?? 10_000, options.signal)
    const found = new Map<string, Provider>()
    for await (const info of this.libp2p.contentRouting.findProviders(CID.parse(cid), { signal })) {
      found.set(info.id.toString(), { peerId: info.id.toString(), multiaddrs: info.multiaddrs.map(a => a.toString()) })
    }
    return [...found.values()]
  }

  private async createLibp2p (privateKey: PrivateKey, store: AnnouncementStore, inbound?: Partial<InboundBudgetSettings>): Promise<Libp2p<KeyfairServices>> {
    this.roles.length = 0
    const node: RoleNode = { repo: this.repo, device: () => this.device, keys: () => this.keys }
    const roles: Pick<KeyfairServiceFactories<NodeServices>, keyof RoleServices> = {}
    for (const name of this.init.roles) {
      roles[`role:${name}`] = (components: RoleComponents) => this.addRole(createRole(name, components, node))
    }
    const services: KeyfairServiceFactories<NodeServices> = {
      crl: (components: CrlFeedComponents) => new CrlFeed(components),
      discovery: (components: DiscoveryComponents) => new Discovery(components, { store }),
      market: (components: MarketComponents) => new Market(components, { repoPath: this.repo.path }),
      ...roles
    }
    return createKeyfairLibp2p<NodeServices>({
      privateKey,
      listen: this.init.listen,
      bootstrap: this.init.bootstrap,
      inbound,
      collectGarbage: garbageCollector(),
      services
    })
  }

  private addRole (role: Role): Role {
    this.roles.push(role)
    return role
  }
}

/** libp2p reports a busy port only inside a message; probe fixed ports first for a typed error. */
async function assertPortsFree (listen: string[]): Promise<void> {
  for (const address of listen) {
    const components = parseListenAddress(address).getComponents()
    const host = components.find(c => c.name === 'ip4' || c.name === 'ip6')?.value
    const port = Number(components.find(c => c.name === 'tcp')?.value ?? 0)
    if (host == null || port === 0) continue
    await new Promise<void>((resolve, reject) => {
      const server = createServer()
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE' ? new PortInUseError(address, { cause: err }) : err)
      })
      server.listen(port, host, () => { server.close(() => { resolve() }) })
    })
  }
}

function listenError (err: unknown, listen: string[]): unknown {
  if (err instanceof Error && err.name === 'UnsupportedListenAddressesError') {
    return new ListenError(`cannot listen on ${listen.join(', ')}`, { cause: err })
  }
  return err
}
