// The agency (docs/protocol.md, Certificates): its root CA sealed in the key store, one-time
// enrollment codes, device and escrow certificates, revocation and the signed CRL. One file
// because each operation is a short transaction over the same store and root key.
import { X509Certificate, createHash, createPublicKey, generateKeyPair, randomBytes } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { fileExists, writeFileAtomic } from '../../device/store/files.ts'
import {
  DEVICE_UNIT, ESCROW_UNIT, MAX_RSA_BITS, MIN_RSA_BITS, PURPOSE_PROFILES, PkiError,
  canonicalSerial, deviceIdOf, inspectCsr
} from '../../device/pki/index.ts'
import { certificateSubject, decodePem } from '../../device/pki/der.ts'
import { BadConfigError, BadRequestError } from '../errors.ts'
import { AGENCY_CA_KEY } from '../keys/keystore.ts'
import { Repo } from '../repo.ts'
import { openDatabase, transaction } from '../store/database.ts'
import {
  AgencyExistsError, AgencyNotInitialisedError, BadCsrError, CertificateNotFoundError, DeviceRevokedError,
  EnrollCodeExpiredError, EnrollCodeKindError, EnrollCodeUnknownError, EnrollCodeUsedError, KeyRevokedError
} from './errors.ts'
import { AgencyStore, agencyMigrations } from './store.ts'
import { buildCrl, createRootCertificate, issueCertificate, keyIdentifierOf, randomSerial } from './x509.ts'
import type { AgencyCounts, CertificateRecord, CodeRecord, EnrollmentKind } from './store.ts'
import type { Issuer } from './x509.ts'
import type { CertificatePurpose, CsrInfo } from '../../device/pki/index.ts'
import type { UnlockedKeys } from '../keys/keystore.ts'
import type { Logger, PeerId } from '@libp2p/interface'
import type { DatabaseSync } from 'node:sqlite'

export type { AgencyCounts, EnrollmentKind }

const DAY_MS = 24 * 60 * 60 * 1000
/** Certificates start this much before their issue, so a verifier whose clock is a little behind accepts them. */
const BACKDATE_MS = 5 * 60 * 1000
export const MAX_CODE_TTL_MS = 30 * DAY_MS
/** The reasons `revoke` accepts (RFC 5280 CRLReason names that make sense for a leaf). */
export const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const

/**
 * Where an agency keeps its state inside a node repo. Its CA key is sealed in the repo's key
 * store (record `agency-ca`); `key` is where earlier versions kept it in plaintext.
 */
export function agencyPaths (repoPath: string): { dir: string, key: string, certificate: string, database: string } {
  const dir = join(repoPath, 'agency')
  return { dir, key: join(dir, 'ca.key'), certificate: join(dir, 'ca.crt'), database: join(dir, 'agency.db') }
}

export interface AgencyInitOptions {
  /** the repo's unlocked key store: the CA key is sealed into it */
  keys: UnlockedKeys
  /** RSA modulus of the root key (default 3072). */
  bits?: number
  /** Root subject CN (default 'keyfair agency'). */
  commonName?: string
  /** Root validity (default 10 years). */
  validityDays?: number
  now?: () => number
}

export interface AgencyInitResult {
  dir: string
  root: string
  /** SHA-256 fingerprint of the root, as OpenSSL prints it (AB:CD:…). */
  fingerprint: string
}

/**
 * Creates the agency's root CA: its key sealed in the repo's key store, `<repo>/agency/ca.crt`
 * (self-signed). Offline; refuses if the repo already has an agency.
 */
export async function initAgency (repoPath: string, options: AgencyInitOptions): Promise<AgencyInitResult> {
  const repo = new Repo(repoPath)
  await repo.assertInitialised()
  const paths = agencyPaths(repo.path)
  if (await fileExists(paths.certificate) || await fileExists(paths.key) || await options.keys.has(AGENCY_CA_KEY)) throw new AgencyExistsError(repo.path)
  const bits = options.bits ?? 3072
  if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw new BadConfigError(`--bits must be an integer ${MIN_RSA_BITS}..${MAX_RSA_BITS}`)
  const commonName = options.commonName ?? 'keyfair agency'
  if (commonName.trim() === '' || commonName.length > 64) throw new BadConfigError('the agency name must be 1..64 characters')
  const validityDays = options.validityDays ?? 3650
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 36500) throw new BadConfigError('root validity must be 1..36500 days')

  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: bits })
  const now = options.now?.() ?? Date.now()
  const root = createRootCertificate(privateKey, publicKey, { commonName }, {
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityDays * DAY_MS)
  })
  await mkdir(paths.dir, { recursive: true, mode: 0o700 })
  await options.keys.putPrivateKey(AGENCY_CA_KEY, privateKey)
  // the certificate last: its presence is what marks the agency as initialised
  await writeFileAtomic(paths.certificate, root, 0o644)
  return { dir: paths.dir, root, fingerprint: new X509Certificate(root).fingerprint256 }
}

export interface AgencyOptions {
  /** the repo's unlocked key store, holding the CA key */
  keys: UnlockedKeys
  now?: () => number
  /** Validity of device certificates (default 365 days). */
  deviceValidityDays?: number
  /** Validity of escrow certificates (default 365 days). */
  escrowValidityDays?: number
  /** nextUpdate − thisUpdate of each CRL (default 24 h); re-signed after half of it. */
  crlValidityMs?: number
  /** Told of each newly signed CRL, once its transaction has committed (the agency role publishes it) */
  onCrlSigned?: (crl: { number: number, der: Uint8Array }) => void
  log?: Logger
}

export interface EnrollmentCode {
  /** The code to hand to the enrolling party, in groups of four for reading aloud. */
  code: string
  kind: EnrollmentKind
  expiresAt: Date
}

export interface CsrSet {
  signing?: string
  encryption?: string
  escrow?: string
}

export interface EnrollRequest {
  code: string
  csrs: CsrSet
  /** The authenticated libp2p peer that asked. */
  remotePeer: PeerId | string
}

export interface EnrollResult {
  certificates: CsrSet
  root: string
}

export interface IssuedCertificate {
  serial: string
  purpose: CertificatePurpose
  /** CN: device id or escrow peer id. */
  subject: string
  pem: string
  notBefore: Date
  notAfter: Date
  issuedAt: Date
  revokedAt?: Date
  reason?: string
}

export interface RevokeResult {
  /** Certificates revoked by this call. */
  revoked: IssuedCertificate[]
  /** Serials that matched but were revoked before. */
  alreadyRevoked: string[]
  crlNumber: number
}

export interface CrlState {
  number: number
  thisUpdate: Date
  nextUpdate: Date
  revoked: number
  der: Uint8Array
}

interface Request {
  kind: EnrollmentKind
  subject: string
  csrs: Array<{ purpose: CertificatePurpose, csr: CsrInfo, slot: keyof CsrSet }>
}

/**
 * The authentication agency (docs/protocol.md, Roles): a root CA that certifies devices and
 * escrows against one-time enrollment codes, and signs the revocation list.
 * Every state change is one IMMEDIATE transaction; a refused request writes nothing.
 */
export class Agency {
  readonly rootPem: string
  readonly rootFingerprint: string
  private readonly issuer: Issuer
  private readonly db: DatabaseSync
  private readonly store: AgencyStore
  private readonly now: () => number
  private readonly log: Logger
  private readonly deviceValidityMs: number
  private readonly escrowValidityMs: number
  private readonly crlValidityMs: number
  private readonly onCrlSigned?: (crl: { number: number, der: Uint8Array }) => void

  private constructor (rootPem: string, issuer: Issuer, db: DatabaseSync, options: AgencyOptions) {
    this.rootPem = rootPem
    this.rootFingerprint = new X509Certificate(rootPem).fingerprint256
    this.issuer = issuer
    this.db = db
    this.store = new AgencyStore(db)
    this.now = options.now ?? Date.now
    this.log = options.log ?? logger('keyfair:agency')
    this.deviceValidityMs = (options.deviceValidityDays ?? 365) * DAY_MS
    this.escrowValidityMs = (options.escrowValidityDays ?? 365) * DAY_MS
    this.crlValidityMs = options.crlValidityMs ?? DAY_MS
    this.onCrlSigned = options.onCrlSigned
  }

  /** Opens the agency of a repo: unseals the CA key once from the key store, opens its database. */
  static async open (repoPath: string, options: AgencyOptions): Promise<Agency> {
    const paths = agencyPaths(repoPath)
    if (!(await fileExists(paths.certificate))) throw new AgencyNotInitialisedError(repoPath)
    const privateKey = await options.keys.getPrivateKey(AGENCY_CA_KEY)
    if (privateKey == null) throw new BadConfigError(`${paths.dir}: the CA key is not in the repo's key store`)
    const rootPem = await readFile(paths.certificate, 'utf8')
    let issuer: Issuer
    try {
      const root = new X509Certificate(rootPem)
      if (!root.checkPrivateKey(privateKey)) throw new Error('key and certificate differ')
      const der = decodePem(rootPem, 'CERTIFICATE')
      if (der == null) throw new Error('not one PEM certificate')
      issuer = { privateKey, subject: certificateSubject(der), keyIdentifier: keyIdentifierOf(createPublicKey(privateKey)) }
    } catch (err) {
      throw new BadConfigError(`${paths.dir}: the sealed CA key and ca.crt are not a matching RSA key and certificate`, { cause: err })
    }
    const db = openDatabase(paths.database, agencyMigrations)
    const agency = new Agency(rootPem, issuer, db, options)
    try {
      agency.currentCrl()
    } catch (err) {
      db.close()
      throw err
    }
    return agency
  }

  close (): void {
    this.db.close()
  }

  /** A one-time code for one device or one escrow; only its SHA-256 is stored. */
  createEnrollmentCode (options: { kind: EnrollmentKind, ttlMs: number }): EnrollmentCode {
    const { kind, ttlMs } = options
    if (kind !== 'device' && kind !== 'escrow') throw new BadRequestError("kind must be 'device' or 'escrow'")
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_CODE_TTL_MS) throw new BadRequestError(`ttl must be 1 ms..${MAX_CODE_TTL_MS / DAY_MS} days`)
    const raw = base32(randomBytes(20))
    const now = this.now()
    transaction(this.db, () => { this.store.insertCode(hashCode(raw), kind, now, now + ttlMs) })
    this.log('created a %s enrollment code valid for %d ms', kind, ttlMs)
    return { code: raw.match(/.{4}/g)!.join('-'), kind, expiresAt: new Date(now + ttlMs) }
  }

  /**
   * Certifies the CSRs of one device (signing + encryption) or one escrow
   * against a one-time code. The code is consumed in the same transaction that
   * records the certificates, so it works exactly once; a refusal leaves the
   * code unused and the database unchanged.
   */
  enroll (request: EnrollRequest): EnrollResult {
    const remotePeer = request.remotePeer.toString()
    const codeHash = normaliseCode(request.code)
    if (codeHash == null) throw new EnrollCodeUnknownError()
    const code = this.checkCode(codeHash)
    const deviceSlots = request.csrs.signing != null || request.csrs.encryption != null
    if (code.kind === 'device' && request.csrs.escrow != null) throw new EnrollCodeKindError(code.kind, 'escrow')
    if (code.kind === 'escrow' && deviceSlots) throw new EnrollCodeKindError(code.kind, 'device')
    const checked = code.kind === 'device' ? this.checkDeviceCsrs(request.csrs) : this.checkEscrowCsr(request.csrs, remotePeer)

    const certificates = transaction(this.db, () => {
      // checked again under the write lock: another enrollment may have won the race
      this.checkCode(codeHash)
      this.checkNotRevoked(checked)
      const now = this.now()
      const issued: CsrSet = {}
      for (const { purpose, csr, slot } of checked.csrs) {
        issued[slot] = this.issueRecorded(csr, purpose, checked.subject, now, codeHash).pem
      }
      if (!this.store.useCode(codeHash, now, remotePeer)) throw new EnrollCodeUsedError()
      return issued
    })
    this.log('enrolled %s %s for %s', checked.kind, checked.subject, remotePeer)
    return { certificates, root: this.rootPem }
  }

  /** The operator's offline path: certify one CSR for one purpose, no code needed. */
  issue (csrPem: string, purpose: CertificatePurpose, options: { validityDays?: number } = {}): IssuedCertificate {
    if (PURPOSE_PROFILES[purpose] == null) throw new BadRequestError('purpose must be device-signing, device-encryption or escrow')
    const validityDays = options.validityDays
    if (validityDays != null && (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 3650)) throw new BadRequestError('validity must be 1..3650 days')
    const csr = inspect(csrPem, purpose)
    checkUnit(csr, purpose)
    if (purpose === 'device-signing') checkDeviceId(csr, deviceIdOf(csr.publicKey), 'signing')
    if (purpose === 'device-encryption' && !/^[0-9a-f]{32}$/.test(csr.commonName)) throw new BadCsrError('device-encryption CSR: CN must be a device id (32 lowercase hex digits)')
    if (purpose === 'escrow') {
      try {
        peerIdFromString(csr.commonName)
      } catch {
        throw new BadCsrError('escrow CSR: CN must be the escrow\'s libp2p peer id')
      }
    }
    const request: Request = { kind: purpose === 'escrow' ? 'escrow' : 'device', subject: csr.commonName, csrs: [{ purpose, csr, slot: 'signing' }] }
    const record = transaction(this.db, () => {
      this.checkNotRevoked(request)
      return this.issueRecorded(csr, purpose, csr.commonName, this.now(), undefined, validityDays == null ? undefined : validityDays * DAY_MS)
    })
    this.log('issued %s certificate %s for %s', purpose, record.serial, record.subject)
    return record
  }

  /**
   * Revokes every certificate whose serial, device id or peer id is `target`,
   * and re-signs the CRL in the same transaction.
   */
  revoke (target: string, reason = 'unspecified'): RevokeResult {
    if (!(REVOCATION_REASONS as readonly string[]).includes(reason)) throw new BadRequestError(`reason must be one of: ${REVOCATION_REASONS.join(', ')}`)
    const wanted = target.trim()
    if (wanted === '' || wanted.length > 128) throw new BadRequestError('name a serial, device id or peer id to revoke')
    let signed: { number: number, der: Uint8Array } | undefined
    const result = transaction(this.db, () => {
      // serials are stored in whole bytes, so one whose first byte is below 0x10 starts with a 0
      const serial = canonicalSerial(wanted)
      const serials = serial == null ? [] : [serial, serial.length % 2 === 1 ? `0${serial}` : serial]
      const matches = this.store.matching(serials, [wanted, wanted.toLowerCase()])
      if (matches.length === 0) throw new CertificateNotFoundError(wanted)
      const now = this.now()
      const revoked: IssuedCertificate[] = []
      for (const cert of matches.filter(c => c.revokedAt == null)) {
        this.store.revoke(cert.serial, reason, now)
        revoked.push(toIssued({ ...cert, revokedAt: now, reason }))
      }
      const crl = revoked.length > 0 ? (signed = this.signCrl(now)) : this.store.getCrl()
      if (revoked.length > 0) this.log('revoked %s (%s); CRL %d', revoked.map(c => c.serial).join(', '), reason, crl?.number)
      return { revoked, alreadyRevoked: matches.filter(c => c.revokedAt != null).map(c => c.serial), crlNumber: crl?.number ?? 0 }
    })
    if (signed != null) this.announce(signed)
    return result
  }

  /** The current CRL (DER), re-signed first once half its validity has passed. */
  currentCrl (): Uint8Array {
    return this.crlState().der
  }

  crlState (): CrlState {
    let crl = this.store.getCrl()
    const now = this.now()
    if (crl == null || now >= crl.thisUpdate + (crl.nextUpdate - crl.thisUpdate) / 2) {
      crl = transaction(this.db, () => this.signCrl(now))
      this.announce(crl)
    }
    return { number: crl.number, thisUpdate: new Date(crl.thisUpdate), nextUpdate: new Date(crl.nextUpdate), revoked: this.store.counts().revocations, der: crl.der }
  }

  certificates (): IssuedCertificate[] {
    return this.store.certificates().map(toIssued)
  }

  counts (): AgencyCounts {
    return this.store.counts()
  }

  /** A listener's failure must not undo or hide a committed revocation */
  private announce (crl: { number: number, der: Uint8Array }): void {
    try {
      this.onCrlSigned?.({ number: crl.number, der: crl.der })
    } catch (err) {
      this.log.error('announcing CRL %d failed - %e', crl.number, err)
    }
  }

  private checkCode (codeHash: string): CodeRecord {
    const code = this.store.getCode(codeHash)
    if (code == null) throw new EnrollCodeUnknownError()
    if (code.usedAt != null) throw new EnrollCodeUsedError()
    if (this.now() >= code.expiresAt) throw new EnrollCodeExpiredError(new Date(code.expiresAt))
    return code
  }

  private checkDeviceCsrs (csrs: CsrSet): Request {
    if (csrs.signing == null || csrs.encryption == null) throw new BadCsrError('a device enrollment needs a signing CSR and an encryption CSR')
    const signing = inspect(csrs.signing, 'device-signing')
    const encryption = inspect(csrs.encryption, 'device-encryption')
    const deviceId = deviceIdOf(signing.publicKey)
    checkDeviceId(signing, deviceId, 'signing')
    checkDeviceId(encryption, deviceId, 'encryption')
    checkUnit(signing, 'device-signing')
    checkUnit(encryption, 'device-encryption')
    if (signing.keyId === encryption.keyId) throw new BadCsrError('the signing and encryption keys of a device must differ')
    return {
      kind: 'device',
      subject: deviceId,
      csrs: [{ purpose: 'device-signing', csr: signing, slot: 'signing' }, { purpose: 'device-encryption', csr: encryption, slot: 'encryption' }]
    }
  }

  private checkEscrowCsr (csrs: CsrSet, remotePeer: string): Request {
    if (csrs.escrow == null) throw new BadCsrError('an escrow enrollment needs an escrow CSR')
    const escrow = inspect(csrs.escrow, 'escrow')
    checkUnit(escrow, 'escrow')
    if (escrow.commonName !== remotePeer) throw new BadCsrError(`escrow CSR: CN must be the peer id of the enrolling node (${remotePeer})`)
    return { kind: 'escrow', subject: remotePeer, csrs: [{ purpose: 'escrow', csr: escrow, slot: 'escrow' }] }
  }

  private checkNotRevoked (request: Request): void {
    const keyIds = request.csrs.map(c => c.csr.keyId)
    if (request.kind === 'device') {
      if (this.store.isRevoked(request.subject, keyIds)) throw new DeviceRevokedError(request.subject)
    } else if (this.store.isRevoked(undefined, keyIds)) {
      throw new KeyRevokedError()
    }
  }

  /** Signs and records one certificate; call inside a transaction. */
  private issueRecorded (csr: CsrInfo, purpose: CertificatePurpose, subject: string, now: number, codeHash: string | undefined, validityMs?: number): IssuedCertificate {
    const lifetime = validityMs ?? (purpose === 'escrow' ? this.escrowValidityMs : this.deviceValidityMs)
    const serial = randomSerial()
    const notBefore = Math.floor((now - BACKDATE_MS) / 1000) * 1000
    const notAfter = Math.floor((now + lifetime) / 1000) * 1000
    const pem = issueCertificate(this.issuer, csr.publicKey, { commonName: subject, organizationalUnit: PURPOSE_PROFILES[purpose].organizationalUnit }, purpose, {
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter)
    }, serial)
    const record = { serial, purpose, subject, keyId: csr.keyId, pem, notBefore, notAfter, issuedAt: now, codeHash }
    this.store.insertCertificate(record)
    return toIssued({ ...record, revokedAt: undefined, reason: undefined })
  }

  /** Signs the next CRL over every revocation; call inside a transaction. */
  private signCrl (now: number): { number: number, thisUpdate: number, nextUpdate: number, der: Uint8Array } {
    const number = (this.store.getCrl()?.number ?? 0) + 1
    const thisUpdate = Math.floor(now / 1000) * 1000
    const nextUpdate = thisUpdate + this.crlValidityMs
    const der = buildCrl(this.issuer, {
      number,
      thisUpdate: new Date(thisUpdate),
      nextUpdate: new Date(nextUpdate),
      revoked: this.store.revocations().map(r => ({ serial: r.serial, revokedAt: new Date(r.revokedAt), reason: r.reason }))
    })
    const crl = { number, thisUpdate, nextUpdate, der }
    this.store.putCrl(crl)
    return crl
  }
}

function inspect (pem: string, purpose: CertificatePurpose): CsrInfo {
  try {
    return inspectCsr(pem)
  } catch (err) {
    if (err instanceof PkiError) throw new BadCsrError(`${purpose} CSR: ${err.message}`)
    throw err
  }
}

function checkUnit (csr: CsrInfo, purpose: CertificatePurpose): void {
  const unit = purpose === 'escrow' ? ESCROW_UNIT : DEVICE_UNIT
  if (csr.organizationalUnit !== unit) throw new BadCsrError(`${purpose} CSR: OU must be '${unit}', not '${csr.organizationalUnit}'`)
}

function checkDeviceId (csr: CsrInfo, deviceId: string, which: string): void {
  if (csr.commonName !== deviceId) throw new BadCsrError(`${which} CSR: CN must be the device id ${deviceId} (derived from the signing key), not '${csr.commonName}'`)
}

function toIssued (record: CertificateRecord): IssuedCertificate {
  return {
    serial: record.serial,
    purpose: record.purpose,
    subject: record.subject,
    pem: record.pem,
    notBefore: new Date(record.notBefore),
    notAfter: new Date(record.notAfter),
    issuedAt: new Date(record.issuedAt),
    ...(record.revokedAt == null ? {} : { revokedAt: new Date(record.revokedAt), reason: record.reason })
  }
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

function base32 (bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31]
  return out
}

/** Codes are read aloud and typed: case, spaces and dashes do not matter. Undefined if it cannot be a code. */
function normaliseCode (code: string): string | undefined {
  const raw = code.replace(/[\s-]/g, '').toUpperCase()
  return /^[A-Z2-7]{32}$/.test(raw) ? hashCode(raw) : undefined
}

function hashCode (raw: string): string {
  return createHash('sha256').update(raw).digest('hex')
}

