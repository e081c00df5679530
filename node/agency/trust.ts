// Which agency a node trusts (`<repo>/agency.json`: its multiaddr and root), and the
// trust store every check of certificates goes through, kept fresh by fetching the
// agency's CRL on a timer and whenever the one held has gone stale.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { bytesEqual } from '../../device/crypto/index.ts'
import { CrlStaleError, TrustStore } from '../../device/pki/index.ts'
import { writeFileAtomic } from '../../device/store/files.ts'
import { requestCrlAnswer } from '../../protocols/agency/crl.ts'
import { KeyfairError } from '../../protocols/errors.ts'
import { fetchCrl } from './client.ts'
import type { CertificatePurpose, VerifiedCertificate } from '../../device/pki/index.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { AbortOptions, Logger } from '@libp2p/interface'

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

export class AgencyTrust {
  private readonly file: string
  private readonly streams: StreamOpener
  private readonly log: Logger
  private current?: { record: AgencyRecord, trust: TrustStore }
  private refreshing?: Promise<void>

  constructor (init: { repoPath: string, streams: StreamOpener, log: Logger }) {
    this.file = join(init.repoPath, 'agency.json')
    this.streams = init.streams
    this.log = init.log
  }

  async load (): Promise<AgencyRecord | undefined> {
    if (this.current != null) return this.current.record
    try {
      const record = JSON.parse(await readFile(this.file, 'utf8')) as AgencyRecord
      this.current = { record, trust: new TrustStore(record.root) }
      return record
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
      throw new KeyfairError('the agency at that address has another root than the one given', 'ERR_CERT_UNTRUSTED')
    }
    const record = { address, root: root ?? answer.root }
    const trust = new TrustStore(record.root)
    trust.setCrl(answer.crl)
    await writeFileAtomic(this.file, JSON.stringify(record, null, 2) + '\n', 0o644)
    this.current = { record, trust }
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
      throw new KeyfairError(`escrow ${info.peer} presents a certificate for another peer or key`, 'ERR_BAD_CERT')
    }
    return cert
  }

  async refresh (options: AbortOptions = {}): Promise<void> {
    const { record, trust } = await this.require()
    // one fetch at a time, however many checks are waiting on it
    this.refreshing ??= fetchCrl({ connectionManager: this.streams }, multiaddr(record.address), trust, options)
      .then(crl => { this.log('CRL %s in force until %s', crl.number, crl.nextUpdate.toISOString()) })
      .finally(() => { this.refreshing = undefined })
    await this.refreshing
  }

  private async require (): Promise<{ record: AgencyRecord, trust: TrustStore }> {
    await this.load()
    if (this.current == null) throw new NoAgencyError()
    return this.current
  }
}
