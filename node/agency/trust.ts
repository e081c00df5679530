// Which agency a node trusts (`<repo>/agency.json`: its multiaddr and root), and the
// trust store every check of certificates goes through. Its revocation list comes pushed
// over pubsub (node/agency/crl-feed.ts); a node that has heard none for a while, or holds
// a stale one when it needs it, fetches it from the agency.
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { bytesEqual } from '../../device/crypto/index.ts'
import { BadCertificateError, CertificateUntrustedError, CrlStaleError, TrustStore, canonicalSerial } from '../../device/pki/index.ts'
import { writeFileAtomic } from '../../device/store/files.ts'
import { requestCrlAnswer } from '../../protocols/agency/crl.ts'
import { KeyfairError } from '../../protocols/errors.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { fetchCrl } from './client.ts'
import type { CrlFeed } from './crl-feed.ts'
import type { CertificatePurpose, CrlInfo, VerifiedCertificate } from '../../device/pki/index.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { AbortOptions, Logger } from '@libp2p/interface'

/** A node that has heard no revocation list for this long fetches one from its agency */
export const CRL_MAX_AGE_MS = 2 * 60_000

/**
 * A node in its agency's topic mesh hears the current list every 30 s: one not heard for
 * longer is fetched before the node answers whether a certificate is revoked.
 */
export const CRL_FRESH_MS = 45_000

/** How long the agency has to send its list when one is fetched */
export const CRL_FETCH_TIMEOUT_MS = 10_000

/** How often a node looks at the age of the list it holds */
export const CRL_CHECK_MS = 10_000

export class NoAgencyError extends KeyfairError {
  static readonly code = 'ERR_NO_AGENCY'
  constructor () {
    super('this node trusts no agency yet: run `keyfair trust --agency <multiaddr>` (or enroll a device)', NoAgencyError.code)
  }
}

export interface AgencyRecord {
  /** the agency's multiaddr, ending in /p2p/<peer id> */
  address: string
  root: string
}

/** Whether certificates appear on the newest revocation list this node holds */
export interface RevocationState {
  revoked: boolean
  /** the revoked serials among those asked about, canonical (lowercase, no leading zero digit) */
  serials: string[]
  reason?: string
  revokedAt?: Date
  crl: { number: bigint, thisUpdate: Date, nextUpdate: Date, heardAt?: Date }
}

export interface AgencyTrustInit {
  repoPath: string
  streams: StreamOpener
  /** the node's CRL feed: only following an agency's lists is needed */
  crl: Pick<CrlFeed, 'follow'>
  log: Logger
  /** fetch the list from the agency when none was heard for this long (default 2 minutes) */
  crlMaxAgeMs?: number
  /** how often the list's age is looked at (default 10 s) */
  crlCheckMs?: number
}

export class AgencyTrust {
  private readonly file: string
  private readonly streams: StreamOpener
  private readonly feed: Pick<CrlFeed, 'follow'>
  private readonly log: Logger
  private readonly crlMaxAgeMs: number
  private readonly crlCheckMs: number
  private current?: { record: AgencyRecord, trust: TrustStore, unfollow?: () => void }
  private refreshing?: Promise<CrlInfo>
  /** when a list from the agency last arrived (pushed or fetched), ms */
  private heardAt = 0
  private timer?: ReturnType<typeof setInterval>

  constructor (init: AgencyTrustInit) {
    this.file = join(init.repoPath, 'agency.json')
    this.streams = init.streams
    this.feed = init.crl
    this.log = init.log
    this.crlMaxAgeMs = init.crlMaxAgeMs ?? CRL_MAX_AGE_MS
    this.crlCheckMs = init.crlCheckMs ?? CRL_CHECK_MS
  }

  /** Follows the trusted agency's lists, and fetches one whenever none came for the maximum age */
  async start (): Promise<void> {
    // an unreadable agency.json fails the checks that need it, not the node's start
    const record = await this.load().catch((err: any) => { this.log.error('cannot read the trusted agency - %e', err) })
    if (record != null) this.follow()
    this.timer = setInterval(() => { void this.checkAge() }, this.crlCheckMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.current?.unfollow?.()
    if (this.current != null) this.current.unfollow = undefined
  }

  async load (): Promise<AgencyRecord | undefined> {
    if (this.current != null) return this.current.record
    try {
      const record = JSON.parse(await readFile(this.file, 'utf8')) as AgencyRecord
      this.current ??= { record, trust: new TrustStore(record.root) }
      return this.current.record
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
  }

  /** Trust this agency: with a root from enrollment, or the one the agency itself serves (authenticated by its peer id) */
  async set (address: string, root?: string, options: AbortOptions = {}): Promise<AgencyRecord> {
    const ma = multiaddr(address)
    const answer = await requestCrlAnswer({ connectionManager: this.streams }, ma, options)
    if (root != null && new TrustStore(root).root.fingerprint256 !== new TrustStore(answer.root).root.fingerprint256) {
      throw new CertificateUntrustedError('the agency at that address has another root than the one given')
    }
    const record = { address, root: root ?? answer.root }
    const trust = new TrustStore(record.root)
    trust.setCrl(answer.crl)
    await writeFileAtomic(this.file, JSON.stringify(record, null, 2) + '\n', 0o644)
    this.current?.unfollow?.()
    this.current = { record, trust }
    this.heardAt = Date.now()
    if (this.timer != null) this.follow()
    return record
  }

  /** Checks a certificate (chain, validity, purpose, revocation), fetching a fresh CRL once if the held one is stale */
  async verify (certificate: string | Uint8Array, purpose: CertificatePurpose, options: AbortOptions = {}): Promise<VerifiedCertificate> {
    const { trust } = await this.require()
    try {
      return trust.verify(certificate, { purpose })
    } catch (err) {
      if (!(err instanceof CrlStaleError)) throw err
      await this.refresh(options)
      return trust.verify(certificate, { purpose })
    }
  }

  /** An escrow's self-description, checked: an agency certificate for that peer id and that very modulus */
  async verifyEscrow (info: { peer: string, n: Uint8Array, certificate: string }, options: AbortOptions = {}): Promise<VerifiedCertificate> {
    const cert = await this.verify(info.certificate, 'escrow', options)
    const modulus = cert.publicKey.export({ format: 'jwk' }).n
    if (cert.subjectCommonName !== info.peer || modulus == null || !bytesEqual(new Uint8Array(Buffer.from(modulus, 'base64url')), info.n)) {
      throw new BadCertificateError(`escrow ${info.peer} presents a certificate for another peer or key`)
    }
    return cert
  }

  async refresh (options: AbortOptions = {}): Promise<CrlInfo> {
    const { record, trust } = await this.require()
    // one fetch at a time, however many checks are waiting on it
    // only a signal, bounded on its own, reaches the dial: never a caller's other options
    this.refreshing ??= fetchCrl({ connectionManager: this.streams }, multiaddr(record.address), trust, { signal: timeoutSignal(CRL_FETCH_TIMEOUT_MS, options.signal) })
      .then(crl => {
        this.heardAt = Date.now()
        this.log('CRL %s in force until %s', crl.number, crl.nextUpdate.toISOString())
        return crl
      })
      .finally(() => { this.refreshing = undefined })
    return this.refreshing
  }

  /**
   * Whether any of these certificates (PEM, issued by the trusted root) is on the newest
   * list held; a list not heard of for CRL_FRESH_MS (the node is not in the topic's mesh)
   * is fetched first. Undefined when this node trusts no agency or holds no list from it.
   */
  async revocationOf (certificates: string[], options: AbortOptions = {}): Promise<RevocationState | undefined> {
    const current = await this.load()
    if (current == null || this.current == null) return undefined
    const { trust } = this.current
    if (trust.crl == null || Date.now() - this.heardAt >= CRL_FRESH_MS) {
      await this.refresh(options).catch((err: any) => { this.log('no fresh CRL from the agency: %s', err.code ?? err.message) })
    }
    const crl = trust.crl
    if (crl == null) return undefined
    const serials = certificates.map(pem => canonicalSerial(new X509Certificate(pem).serialNumber) ?? '')
    const entries = serials.flatMap(serial => {
      const entry = crl.revoked.get(serial)
      return entry == null ? [] : [entry]
    })
    return {
      revoked: entries.length > 0,
      serials: entries.map(e => e.serial),
      reason: entries[0]?.reason,
      revokedAt: entries[0]?.revokedAt,
      crl: { number: crl.number, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, heardAt: this.heardAt > 0 ? new Date(this.heardAt) : undefined }
    }
  }

  /** The root this node trusts, if any (PEM) */
  async root (): Promise<string | undefined> {
    return (await this.load())?.root
  }

  private follow (): void {
    const current = this.current
    if (current == null) return
    current.unfollow?.()
    current.unfollow = this.feed.follow(current.record.root, der => {
      const before = current.trust.crl
      try {
        const info = current.trust.setCrl(der)
        if (!bytesEqual(info.der, der)) return
        this.heardAt = Date.now()
        if (before == null || info.number > before.number) this.log('CRL %s pushed, in force until %s', info.number, info.nextUpdate.toISOString())
      } catch (err: any) {
        this.log('pushed CRL not taken: %s', err.code ?? err.message)
      }
    })
  }

  private async checkAge (): Promise<void> {
    if (this.current == null || Date.now() - this.heardAt < this.crlMaxAgeMs) return
    try {
      await this.refresh({ signal: AbortSignal.timeout(this.crlCheckMs) })
    } catch (err: any) {
      this.log('no CRL heard for %d s and the agency did not answer: %s', Math.round((Date.now() - this.heardAt) / 1000), err.code ?? err.message)
    }
  }

  private async require (): Promise<{ record: AgencyRecord, trust: TrustStore }> {
    await this.load()
    if (this.current == null) throw new NoAgencyError()
    return this.current
  }
}
