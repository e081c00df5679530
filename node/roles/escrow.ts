import { createPublicKey } from 'node:crypto'
import { KEEP_ALIVE, setMaxListeners } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { bytesEqual } from '../../device/crypto/index.ts'
import { TrustStore, createCsr, ESCROW_UNIT } from '../../device/pki/index.ts'
import { AccountService } from '../../protocols/escrow/account.ts'
import { EscrowInfoService } from '../../protocols/escrow/info.ts'
import { RenewService } from '../../protocols/escrow/renew.ts'
import { SettleService } from '../../protocols/escrow/settle.ts'
import { UnblindService } from '../../protocols/escrow/unblind.ts'
import { ReserveService } from '../../protocols/escrow/reserve.ts'
import { enrollWithAgency, fetchCrl } from '../agency/client.ts'
import { AgencyUnreachableError } from '../agency/errors.ts'
import { CRL_CHECK_MS, CRL_MAX_AGE_MS } from '../agency/trust.ts'
import { KeyfairError } from '../../protocols/errors.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { escrowServiceCid } from '../discovery/keywords.ts'
import { Escrow } from '../escrow/escrow.ts'
import { EscrowNotReadyError, EscrowStandbyError, LedgerUnavailableError } from '../escrow/errors.ts'
import { Leadership } from '../escrow/leadership.ts'
import { LeaderLock } from '../escrow/pg-leader.ts'
import { ledgerConnection, openLedger } from '../escrow/open-ledger.ts'
import { EscrowFiles } from '../escrow/state.ts'
import { UnblindPool, unblindWorkerCount } from '../escrow/pool.ts'
import { EscrowKey } from '../escrow/unblind.ts'
import { Role } from './role.ts'
import type { RoleComponents, RoleNode } from './role.ts'
import type { CrlInfo } from '../../device/pki/index.ts'
import type { EscrowMode } from '../escrow/leadership.ts'
import type { LedgerStore } from '../escrow/ledger-store.ts'
import type { EscrowSettings } from '../escrow/state.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface EscrowRoleInit {
  /** How often the escrow service record is provided again. */
  advertiseIntervalMs?: number
  /** Fetch the agency's CRL when none arrived (pushed or fetched) for this long (default 2 minutes). */
  crlMaxAgeMs?: number
  /** How often the CRL's age and the connection to the agency are looked at (default 10 s). */
  crlCheckMs?: number
}

const CRL_RETRY_MS = 5000

/** A fetch of the agency's CRL gives up after this long */
const CRL_FETCH_TIMEOUT_MS = 10_000

/** Peer store tag of the agency: libp2p redials a peer tagged keep-alive when its connection drops */
const AGENCY_TAG = `${KEEP_ALIVE}-keyfair-agency`

/**
 * Holds payments and answers blind unblind requests (docs/protocol.md, Ledger). Its key and
 * ledger live in `<repo>/escrow/`; it serves requests once enrolled with an
 * agency. Advertises itself under the well-known escrow service CID so sellers
 * can pick escrows from the DHT.
 */
export class EscrowRole extends Role {
  readonly name = 'escrow'
  private readonly advertiseIntervalMs: number
  private readonly crlMaxAgeMs: number
  private readonly crlCheckMs: number
  private readonly files: EscrowFiles
  private controller?: AbortController
  private readonly timers = new Set<ReturnType<typeof setTimeout>>()
  private running?: { escrow: Escrow, ledger: LedgerStore, agency?: string }
  /** the private key (in worker threads or here) and settings, for the life of the role */
  private keys?: { key: EscrowKey | UnblindPool, pool?: UnblindPool, settings: EscrowSettings }
  private leadership?: Leadership
  private libp2pStarted = false
  /** lost the escrow's lock while active: every request refused (retryable), nothing written */
  private suspended = false
  private refreshing?: Promise<CrlInfo>
  /** when a current CRL last arrived from the agency, pushed or fetched (ms) */
  private crlHeard = 0
  private unfollow?: () => void
  /** CRL writes, one after another, each of the list in force then */
  private saving: Promise<void> = Promise.resolve()

  constructor (components: RoleComponents, node: RoleNode, init: EscrowRoleInit = {}) {
    super(components, node, 'escrow')
    this.advertiseIntervalMs = init.advertiseIntervalMs ?? 6 * 60 * 60 * 1000
    this.crlMaxAgeMs = init.crlMaxAgeMs ?? CRL_MAX_AGE_MS
    this.crlCheckMs = init.crlCheckMs ?? CRL_CHECK_MS
    this.files = new EscrowFiles(node.repo.path)
    this.services.push(
      new EscrowInfoService(components, { source: { info: () => this.escrow.info() } }),
      new UnblindService(components, { unblinder: { unblind: async (request, caller) => this.escrow.unblind(request, caller) } }),
      new ReserveService(components, { reserver: { reserve: async (request, caller) => this.escrow.reserve(request, caller), cancel: async (purchase, caller) => this.escrow.cancelReservation(purchase, caller) } }),
      new SettleService(components, { settler: { settle: async signed => this.escrow.settle(signed), admits: (caller, length) => this.escrow.admitsSettlement(caller, length) } }),
      new RenewService(components, { renewer: { renew: async signed => this.escrow.renew(signed) } }),
      new AccountService(components, { source: { account: caller => this.escrow.account(caller) } })
    )
  }

  get escrow (): Escrow {
    if (this.running == null) throw this.notRunning()
    if (this.suspended) throw new LedgerUnavailableError('this escrow process lost its lock on the ledger database: retry later')
    return this.running.escrow
  }

  /** worker threads doing the private operations (0: the main thread) */
  get unblindWorkers (): number {
    return this.keys?.pool?.size ?? 0
  }

  get ledger (): LedgerStore {
    if (this.running == null) throw this.notRunning()
    if (this.suspended) throw new LedgerUnavailableError('this escrow process lost its lock on the ledger database: retry later')
    return this.running.ledger
  }

  private notRunning (): Error {
    return this.leadership != null ? new EscrowStandbyError() : new EscrowNotReadyError('the escrow role is not running')
  }

  override async start (): Promise<void> {
    const privateKey = await this.files.loadOrCreateKey(this.node.keys())
    const settings = await this.files.settings()
    const workers = unblindWorkerCount(settings.unblindWorkers)
    // with workers, the private key lives in them; this thread keeps the modulus
    const key = workers > 0 ? new UnblindPool(privateKey, workers) : new EscrowKey(privateKey)
    this.keys = { key, pool: key instanceof UnblindPool ? key : undefined, settings }
    try {
      if (settings.ledger == null) {
        await this.activate()
        return
      }
      // on PostgreSQL, other processes of this escrow may share the ledger: one answers, the rest stand by
      const lock = new LeaderLock({ ...await ledgerConnection(settings), peerId: this.components.peerId.toString() }, this.log)
      this.leadership = new Leadership({
        lock,
        activate: async () => this.activate(),
        deactivate: async () => this.deactivate(false),
        suspend: () => { this.suspended = true },
        resume: () => { this.suspended = false },
        log: this.log
      })
      if (await this.leadership.start() === 'standby') {
        this.log('standby: another process of this escrow holds its lock; taking over when it stops')
      }
    } catch (err) {
      this.leadership = undefined
      await this.keys.pool?.close()
      this.keys = undefined
      throw err
    }
  }

  /** active: this process answers for the escrow; standby: another process of it does; suspended: lost its lock, refusing */
  get mode (): EscrowMode {
    return this.leadership?.mode ?? (this.running != null ? 'active' : 'standby')
  }

  afterStart (): void {
    this.libp2pStarted = true
    if (this.running != null) this.startTasks()
  }

  override async stop (): Promise<void> {
    this.libp2pStarted = false
    try {
      if (this.leadership != null) await this.leadership.stop()
      else await this.deactivate(true)
    } finally {
      this.leadership = undefined
      await this.keys?.pool?.close()
      this.keys = undefined
    }
  }

  /** Opens the ledger and starts answering: the protocols registered, the service advertised */
  private async activate (): Promise<void> {
    if (this.keys == null) throw new EscrowNotReadyError('the escrow role is not running')
    const { key, pool, settings } = this.keys
    const ledger = await openLedger(this.files, settings, this.log)
    const escrow = new Escrow({
      peerId: this.components.peerId.toString(),
      privateKey: this.components.privateKey,
      key,
      ledger,
      log: this.log,
      currency: settings.currency,
      holdTtlMs: settings.holdTtlMs,
      reservationTtlMs: settings.reservationTtlMs,
      clockWindowMs: settings.clockWindowMs,
      faultyAnswers: settings.faultyAnswers,
      refreshCrl: async () => { await this.refreshCrl({ signal: AbortSignal.timeout(CRL_FETCH_TIMEOUT_MS) }) }
    })
    this.running = { escrow, ledger }
    try {
      await escrow.load()
      const credentials = await this.files.credentials()
      if (credentials != null) {
        const trust = new TrustStore(credentials.root)
        const crl = await this.files.crl()
        try {
          if (crl != null) trust.setCrl(crl)
        } catch (err: any) {
          this.log('the saved CRL is not usable (%s): fetching a new one', err.code ?? err.message)
        }
        escrow.setCredentials({ certificate: credentials.certificate, root: credentials.root, trust })
        this.running.agency = credentials.agency
      }
      await super.start()
    } catch (err) {
      await ledger.close()
      this.running = undefined
      throw err
    }
    this.controller = new AbortController()
    setMaxListeners(Infinity, this.controller.signal)
    this.log('escrow %s, %d-bit key, %s, private operations %s', escrow.ready ? 'enrolled' : 'not enrolled yet', key.modulus.length * 8, settings.currency,
      pool != null ? `in ${pool.size} worker threads` : 'on the main thread')
    if (settings.faultyAnswers) this.log.error('faultyAnswers is on: this escrow answers wrongly on purpose (adversarial testing only)')
    // a takeover after libp2p started: advertise and follow the agency now
    if (this.libp2pStarted) this.startTasks()
  }

  /** Stops answering: protocols unregistered, periodic tasks ended, the ledger closed */
  private async deactivate (strict: boolean): Promise<void> {
    this.unfollow?.()
    this.unfollow = undefined
    this.controller?.abort()
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    await super.stop()
    const running = this.running
    this.running = undefined
    this.suspended = false
    // holds waiting for their group commit are written before the ledger closes
    try {
      await running?.escrow.flush()
    } catch (err) {
      if (strict) throw err
      this.log.error('holds not written before deactivating - %e', err)
    } finally {
      await running?.ledger.close()
    }
  }

  private startTasks (): void {
    this.schedule(0, async signal => {
      const result = await this.components.discovery.provide(escrowServiceCid(), { signal })
      this.log(result.ok ? 'advertised escrow service' : 'escrow service not advertised yet: %s', result.error)
      return result.ok ? this.advertiseIntervalMs : 2000
    })
    // CRLs come pushed by the agency; one is fetched only when none came for the maximum age
    if (this.running?.agency != null) this.followAgency()
    this.schedule(0, async signal => {
      if (this.running?.agency == null) return this.crlCheckMs
      await this.keepAgencyConnection(signal).catch((err: any) => {
        this.log('agency unreachable: %s', err.code ?? err.message)
      })
      if (Date.now() - this.crlHeard < this.crlMaxAgeMs) return this.crlCheckMs
      try {
        await this.refreshCrl({ signal: timeoutSignal(CRL_FETCH_TIMEOUT_MS, signal) })
        return this.crlCheckMs
      } catch (err: any) {
        const since = this.crlHeard > 0 ? `for ${Math.round((Date.now() - this.crlHeard) / 1000)} s` : 'since this node started'
        this.log('no CRL heard %s and the fetch failed, retrying: %s', since, err.code ?? err.message)
        return CRL_RETRY_MS
      }
    })
    // holds that outlive their time go to the seller, reservations back to the buyer
    this.schedule(1000, async () => {
      if (this.suspended) return 1000
      const ended = await this.running?.escrow.expireDue() ?? []
      if (ended.length > 0) this.log('released %d expired holds to their sellers', ended.length)
      return 1000
    })
  }


  /** Certifies this escrow's key with an agency (one-time code), then fetches its CRL */
  async enroll (agency: string, code: string, options: AbortOptions = {}): Promise<{ certificate: string, root: string }> {
    const privateKey = await this.files.loadOrCreateKey(this.node.keys())
    const csr = createCsr(privateKey, createPublicKey(privateKey), { commonName: this.components.peerId.toString(), organizationalUnit: ESCROW_UNIT })
    const enrolled = await enrollWithAgency(this.components, multiaddr(agency), { code, csrs: { escrow: csr } }, options)
    const certificate = enrolled.certificates.escrow
    if (certificate == null) throw new EscrowNotReadyError('the agency issued no escrow certificate')
    await this.files.saveCredentials({ certificate, root: enrolled.root, agency })
    this.escrow.setCredentials({ certificate, root: enrolled.root, trust: new TrustStore(enrolled.root) })
    this.running!.agency = agency
    this.followAgency()
    await this.refreshCrl(options)
    return { certificate, root: enrolled.root }
  }

  /** Fetches the agency's current CRL into the trust store now; resolves with the list in force */
  async refreshCrl (options: AbortOptions = {}): Promise<CrlInfo> {
    const agency = this.running?.agency
    const trust = this.running?.escrow.trust
    if (agency == null || trust == null) throw new EscrowNotReadyError('this escrow is not enrolled with an agency yet')
    // however many requests wait on a fresh CRL, one fetch serves them all
    this.refreshing ??= fetchCrl(this.components, multiaddr(agency), trust, options)
      .then(async crl => {
        this.crlHeard = Date.now()
        await this.saveCrl()
        this.log('CRL %s in force until %s', crl.number, crl.nextUpdate.toISOString())
        return crl
      }, (err: any) => {
        // a list the agency sent that does not check out is its own error; anything else means no answer
        if (err instanceof KeyfairError && /^ERR_(CRL|CERT)_/.test(err.code)) throw err
        throw new AgencyUnreachableError(agency, String(err?.code ?? err?.name ?? 'no answer'), { cause: err })
      })
      .finally(() => { this.refreshing = undefined })
    return this.refreshing
  }

  /** When a current CRL last arrived from the agency, pushed or fetched */
  get crlHeardAt (): Date | undefined {
    return this.crlHeard > 0 ? new Date(this.crlHeard) : undefined
  }

  /** Takes the agency's CRLs from its pubsub topic, and keeps a connection to it so they reach this escrow */
  private followAgency (): void {
    const trust = this.running?.escrow.trust
    if (trust == null) return
    this.unfollow?.()
    this.unfollow = this.components.crl.follow(trust.rootPem, der => { this.adoptPushedCrl(der) })
    if (this.controller != null) {
      void this.keepAgencyConnection(this.controller.signal).catch((err: any) => {
        this.log('agency unreachable: %s', err.code ?? err.message)
      })
    }
  }

  /** A CRL from the topic: the feed checked it against the root, the trust store takes it only if newer */
  private adoptPushedCrl (der: Uint8Array): void {
    const trust = this.running?.escrow.trust
    if (trust == null) return
    const before = trust.crl?.number
    let info: CrlInfo
    try {
      info = trust.setCrl(der)
    } catch (err: any) {
      this.log('pushed CRL not taken: %s', err.code ?? err.message)
      return
    }
    if (!bytesEqual(info.der, der)) return
    this.crlHeard = Date.now()
    if (before != null && info.number <= before) return
    this.log('CRL %s pushed, in force until %s', info.number, info.nextUpdate.toISOString())
    void this.saveCrl().catch((err: any) => { this.log.error('could not save the CRL - %e', err) })
  }

  private async saveCrl (): Promise<void> {
    this.saving = this.saving.catch(() => {}).then(async () => {
      const crl = this.running?.escrow.trust?.crl
      if (crl != null) await this.files.saveCrl(crl.der)
    })
    await this.saving
  }

  /** Tags the agency keep-alive and dials it when no connection is open (libp2p drops the tag after failed redials) */
  private async keepAgencyConnection (signal: AbortSignal): Promise<void> {
    const agency = this.running?.agency
    if (agency == null) return
    const address = multiaddr(agency)
    const id = address.getComponents().findLast(c => c.name === 'p2p')?.value
    if (id == null) return
    const peer = peerIdFromString(id)
    if (peer.equals(this.components.peerId)) return
    if (this.components.connectionManager.getConnections(peer).length > 0) return
    await this.components.peerStore.merge(peer, { multiaddrs: [address], tags: { [AGENCY_TAG]: { value: 100 } } })
    await this.components.connectionManager.openConnection(address, { signal: timeoutSignal(CRL_FETCH_TIMEOUT_MS, signal) })
  }

  /** Runs `task` after `delayMs`, then again after the delay it returns, until the role stops */
  private schedule (delayMs: number, task: (signal: AbortSignal) => Promise<number>): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      const signal = this.controller?.signal
      if (signal == null || signal.aborted) return
      void task(signal).then(next => { this.schedule(next, task) }, err => {
        this.log.error('escrow task failed - %e', err)
        this.schedule(CRL_RETRY_MS, task)
      })
    }, delayMs)
    timer.unref()
    this.timers.add(timer)
  }
}
