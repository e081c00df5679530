// One verification of agency certificates and revocation lists, shared by
// escrows (device requests) and buyers (escrow certificates). On the request
// path it costs one node:crypto signature check per new certificate; results
// are cached by certificate fingerprint and only time and revocation are
// re-checked per call.
import { X509Certificate, createHash, verify as verifySignature } from 'node:crypto'
import { forge } from './forge.ts'
import {
  OID, RSA_SIGNATURE_HASH, bitStringBytes, certificateSubject, children, decodePem, derOf, integerHex,
  nameValue, oidOf, parseDer, readName, signedPart, timeOf
} from './der.ts'
import {
  BadCertificateError, CertificateExpiredError, CertificateNotYetValidError, CertificatePurposeError,
  CertificateRevokedError, CertificateUntrustedError, CrlInvalidError, CrlStaleError
} from './errors.ts'
import { MAX_RSA_BITS, MIN_RSA_BITS, PURPOSE_PROFILES, canonicalSerial, deviceIdOf } from './names.ts'
import type { CertificatePurpose, KeyUsage } from './names.ts'
import type { KeyObject } from 'node:crypto'
import type { NodeForge } from './forge.ts'

export interface VerifiedCertificate {
  subjectCommonName: string
  /** Canonical serial: lowercase hex, no leading zeros. */
  serialNumber: string
  publicKey: KeyObject
  notBefore: Date
  notAfter: Date
  purpose: CertificatePurpose
  /** SHA-256 of the certificate DER, hex. */
  fingerprint: string
}

export interface VerifyOptions {
  purpose: CertificatePurpose
  /** The instant the certificate must be valid at (default: now). */
  at?: Date
}

export interface RevokedEntry {
  serial: string
  revokedAt: Date
  /** RFC 5280 reason name, when the list states one. */
  reason?: string
}

export interface CrlInfo {
  number: bigint
  thisUpdate: Date
  nextUpdate: Date
  revoked: ReadonlyMap<string, RevokedEntry>
  der: Uint8Array
}

export interface TrustStoreOptions {
  /** Refuse every certificate while no current CRL is held (default true). */
  requireCrl?: boolean
  /** Clock in ms (tests inject one). */
  now?: () => number
  /** How far in the future a CRL's thisUpdate may lie (default 5 minutes). */
  clockSkewMs?: number
  /** Verified certificates remembered (default 10 000). */
  maxCacheEntries?: number
}

/** Largest CRL accepted: about 25 000 revocations. */
export const MAX_CRL_BYTES = 1024 * 1024
const MAX_CERT_PEM_LENGTH = 16 * 1024

export const CRL_REASONS = [
  'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded',
  'cessationOfOperation', 'certificateHold', undefined, 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise'
] as const

/** What a certificate says, once its chain is verified: purpose checks need only this. */
interface CheckedCertificate {
  commonName: string | undefined
  organizationalUnit: string | undefined
  keyUsage: (KeyUsage & { other: boolean }) | undefined
  ca: boolean
  serialNumber: string
  publicKey: KeyObject
  bits: number
  /** deviceIdOf(publicKey), computed once. */
  keyDeviceId: string
  notBefore: Date
  notAfter: Date
  fingerprint: string
}

/**
 * The agency root, the newest valid CRL it signed, and a cache of verified
 * certificates. Certificates must be issued directly by the root.
 */
export class TrustStore {
  readonly root: X509Certificate
  readonly rootPem: string
  private readonly rootSubject: Buffer
  private readonly requireCrl: boolean
  private readonly now: () => number
  private readonly clockSkewMs: number
  private readonly maxCacheEntries: number
  private readonly cache = new Map<string, CheckedCertificate>()
  private current?: CrlInfo

  constructor (rootPem: string, options: TrustStoreOptions = {}) {
    const der = typeof rootPem === 'string' && rootPem.length <= MAX_CERT_PEM_LENGTH ? decodePem(rootPem, 'CERTIFICATE') : undefined
    if (der == null) throw new BadCertificateError('the agency root is not one PEM certificate')
    let root: X509Certificate
    try {
      root = new X509Certificate(der)
      this.rootSubject = certificateSubject(der)
    } catch {
      throw new BadCertificateError('the agency root cannot be parsed')
    }
    if (!root.ca || !root.checkIssued(root) || !root.verify(root.publicKey) || root.publicKey.asymmetricKeyType !== 'rsa') {
      throw new BadCertificateError('the agency root must be a self-signed RSA CA certificate')
    }
    this.root = root
    this.rootPem = root.toString()
    this.requireCrl = options.requireCrl ?? true
    this.now = options.now ?? Date.now
    this.clockSkewMs = options.clockSkewMs ?? 5 * 60_000
    this.maxCacheEntries = options.maxCacheEntries ?? 10_000
  }

  /** The revocation list in force, if any. */
  get crl (): CrlInfo | undefined {
    return this.current
  }

  /**
   * Checks a CRL (DER) against the root: structure, signature, issuer, dates.
   * A valid list replaces the one held only if its crlNumber is higher, so an
   * old list replayed cannot un-revoke anything. Returns the list in force.
   */
  setCrl (der: Uint8Array): CrlInfo {
    const info = this.checkCrl(der)
    if (this.current == null || info.number > this.current.number) {
      this.current = info
      this.cache.clear()
    }
    return this.current
  }

  /** Verifies a certificate (PEM or DER) for one purpose at one instant; throws a typed PkiError otherwise. */
  verify (certificate: string | Uint8Array, options: VerifyOptions): VerifiedCertificate {
    const { purpose } = options
    const checked = this.checkChain(certificate)
    checkPurpose(checked, purpose)

    const now = this.now()
    if (this.requireCrl) {
      if (this.current == null) throw new CrlStaleError('no revocation list from the agency yet')
      if (now >= this.current.nextUpdate.getTime()) throw new CrlStaleError(`the revocation list expired at ${this.current.nextUpdate.toISOString()}`)
    }
    if (this.current?.revoked.has(checked.serialNumber) === true) {
      throw new CertificateRevokedError(`certificate ${checked.serialNumber} has been revoked`)
    }
    const at = options.at?.getTime() ?? now
    if (at < checked.notBefore.getTime()) throw new CertificateNotYetValidError(`certificate is valid from ${checked.notBefore.toISOString()}`)
    if (at > checked.notAfter.getTime()) throw new CertificateExpiredError(`certificate expired at ${checked.notAfter.toISOString()}`)
    if (at > this.root.validToDate.getTime()) throw new CertificateExpiredError(`the agency root expired at ${this.root.validToDate.toISOString()}`)
    if (at < this.root.validFromDate.getTime()) throw new CertificateNotYetValidError('the agency root is not valid yet')
    return {
      subjectCommonName: checked.commonName ?? '',
      serialNumber: checked.serialNumber,
      publicKey: checked.publicKey,
      notBefore: checked.notBefore,
      notAfter: checked.notAfter,
      purpose,
      fingerprint: checked.fingerprint
    }
  }

  /**
   * The subject CN of a certificate whose chain this store checked already (from its cache),
   * without checking anything now: a hint for a lookup made before verification, never an
   * authority. Undefined for a certificate not seen, or seen before the last CRL.
   */
  checkedCommonName (der: Uint8Array): string | undefined {
    return this.cache.get(createHash('sha256').update(der).digest('hex'))?.commonName
  }

  /** Chain check (cached): issued and signed by the root, RSA of a sane size, parseable extensions. */
  private checkChain (certificate: string | Uint8Array): CheckedCertificate {
    const der = typeof certificate === 'string'
      ? (certificate.length <= MAX_CERT_PEM_LENGTH ? decodePem(certificate, 'CERTIFICATE') : undefined)
      : (certificate instanceof Uint8Array ? certificate : undefined)
    if (der == null) throw new BadCertificateError('not one PEM certificate')
    const fingerprint = createHash('sha256').update(der).digest('hex')
    const cached = this.cache.get(fingerprint)
    if (cached != null) return cached

    let cert: X509Certificate
    try {
      cert = new X509Certificate(der)
    } catch {
      throw new BadCertificateError('certificate cannot be parsed')
    }
    if (!cert.checkIssued(this.root) || !cert.verify(this.root.publicKey)) {
      throw new CertificateUntrustedError('certificate is not issued by the trusted agency root')
    }
    const publicKey = cert.publicKey
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
    if (publicKey.asymmetricKeyType !== 'rsa' || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new BadCertificateError(`certificate key must be RSA ${MIN_RSA_BITS}..${MAX_RSA_BITS} bits`)
    }
    let fields: ReturnType<typeof certificateFields>
    try {
      fields = certificateFields(der)
    } catch {
      throw new BadCertificateError('certificate fields cannot be parsed')
    }
    const serialNumber = canonicalSerial(cert.serialNumber)
    if (serialNumber == null) throw new BadCertificateError('certificate serial number is not hex')
    const checked: CheckedCertificate = {
      ...fields,
      ca: cert.ca,
      serialNumber,
      publicKey,
      bits,
      keyDeviceId: deviceIdOf(publicKey),
      notBefore: cert.validFromDate,
      notAfter: cert.validToDate,
      fingerprint
    }
    if (this.cache.size >= this.maxCacheEntries) this.cache.clear()
    this.cache.set(fingerprint, checked)
    return checked
  }

  private checkCrl (der: Uint8Array): CrlInfo {
    if (!(der instanceof Uint8Array) || der.byteLength === 0 || der.byteLength > MAX_CRL_BYTES) {
      throw new CrlInvalidError(`a revocation list must be 1..${MAX_CRL_BYTES} bytes of DER`)
    }
    const parsed = parseCrl(der)
    if (!parsed.issuer.equals(this.rootSubject)) throw new CrlInvalidError('revocation list is not issued by the agency root')
    const hash = RSA_SIGNATURE_HASH[parsed.algorithm]
    if (hash == null) throw new CrlInvalidError('revocation list must be signed with RSA PKCS#1 v1.5 and SHA-2')
    if (!verifySignature(hash, parsed.tbs, this.root.publicKey, parsed.signature)) {
      throw new CrlInvalidError('revocation list signature does not verify with the agency root key')
    }
    const now = this.now()
    if (parsed.thisUpdate.getTime() > now + this.clockSkewMs) throw new CrlInvalidError(`revocation list is dated in the future (${parsed.thisUpdate.toISOString()})`)
    if (parsed.nextUpdate.getTime() <= parsed.thisUpdate.getTime()) throw new CrlInvalidError('revocation list nextUpdate is not after thisUpdate')
    if (parsed.nextUpdate.getTime() <= now) throw new CrlStaleError(`revocation list expired at ${parsed.nextUpdate.toISOString()}`)
    return { number: parsed.number, thisUpdate: parsed.thisUpdate, nextUpdate: parsed.nextUpdate, revoked: parsed.revoked, der: Uint8Array.from(der) }
  }
}

function checkPurpose (cert: CheckedCertificate, purpose: CertificatePurpose): void {
  const profile = PURPOSE_PROFILES[purpose]
  if (profile == null) throw new CertificatePurposeError(`unknown certificate purpose '${String(purpose)}'`)
  if (cert.ca) throw new CertificatePurposeError('a CA certificate cannot be used as a leaf')
  if (cert.organizationalUnit !== profile.organizationalUnit) {
    throw new CertificatePurposeError(`certificate is for '${cert.organizationalUnit ?? '?'}', not '${profile.organizationalUnit}' (${purpose})`)
  }
  const usage = cert.keyUsage
  if (usage == null || usage.other || usage.digitalSignature !== profile.keyUsage.digitalSignature || usage.keyEncipherment !== profile.keyUsage.keyEncipherment) {
    throw new CertificatePurposeError(`certificate key usage does not fit ${purpose}`)
  }
  if (cert.commonName == null || cert.commonName === '') throw new CertificatePurposeError('certificate has no subject CN')
  if (purpose === 'device-signing' && cert.commonName !== cert.keyDeviceId) {
    throw new CertificatePurposeError('device certificate CN is not the device id of its key')
  }
}

function certificateFields (der: Uint8Array): Pick<CheckedCertificate, 'commonName' | 'organizationalUnit' | 'keyUsage'> {
  const tbs = children(children(parseDer(der))[0])
  const offset = tbs[0]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC ? 1 : 0
  const subject = readName(tbs[offset + 4])
  const extensions = tbs.find(n => n.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && n.type === 3)
  let keyUsage: CheckedCertificate['keyUsage']
  for (const ext of extensions == null ? [] : children(children(extensions)[0])) {
    const parts = children(ext)
    if (oidOf(parts[0]) !== OID.keyUsage) continue
    const value = parts.at(-1)
    if (value?.type !== forge.asn1.Type.OCTETSTRING || typeof value.value !== 'string') throw new RangeError('bad keyUsage')
    const bits = parseDer(Buffer.from(value.value, 'binary'))
    if (bits.type !== forge.asn1.Type.BITSTRING || typeof bits.value !== 'string') throw new RangeError('bad keyUsage')
    const bytes = Buffer.from(bits.value.slice(1), 'binary')
    const first = bytes[0] ?? 0
    keyUsage = {
      digitalSignature: (first & 0x80) !== 0,
      keyEncipherment: (first & 0x20) !== 0,
      // anything else (nonRepudiation, dataEncipherment, keyAgreement, keyCertSign, cRLSign, …)
      other: (first & ~(0x80 | 0x20)) !== 0 || bytes.subarray(1).some(b => b !== 0)
    }
  }
  return {
    commonName: nameValue(subject, OID.commonName),
    organizationalUnit: nameValue(subject, OID.organizationalUnitName),
    keyUsage
  }
}

export interface ParsedCrl {
  /** The exact signed bytes (tbsCertList). */
  tbs: Uint8Array
  /** Signature algorithm OID (outer and inner agree). */
  algorithm: string
  signature: Buffer
  /** Issuer Name, exact DER. */
  issuer: Buffer
  thisUpdate: Date
  nextUpdate: Date
  number: bigint
  revoked: Map<string, RevokedEntry>
}

/**
 * Parses an X.509 v2 CRL (RFC 5280 §5) without checking its signature. Refuses
 * anything keyfair's agency would not produce: no nextUpdate or crlNumber,
 * an unknown critical extension, a duplicate serial.
 */
export function parseCrl (der: Uint8Array): ParsedCrl {
  try {
    return parseCrlFields(der)
  } catch (err) {
    if (err instanceof CrlInvalidError) throw err
    throw new CrlInvalidError('revocation list is not a well-formed X.509 v2 CRL')
  }
}

function parseCrlFields (der: Uint8Array): ParsedCrl {
  const { asn1 } = forge
  const [tbsNode, algorithmNode, signatureNode] = children(parseDer(der))
  const tbs = children(tbsNode)
  let i = 0
  if (tbs[i]?.type !== asn1.Type.INTEGER || tbs[i]?.value !== '\x01') throw new CrlInvalidError('revocation list must be version 2')
  i++
  const inner = oidOf(children(tbs[i++])[0])
  const algorithm = oidOf(children(algorithmNode)[0])
  if (inner !== algorithm) throw new CrlInvalidError('revocation list signature algorithms disagree')
  const issuerNode = tbs[i++]
  readName(issuerNode)
  const thisUpdate = timeOf(tbs[i++])
  const next = tbs[i]
  if (next == null || (next.type !== asn1.Type.UTCTIME && next.type !== asn1.Type.GENERALIZEDTIME)) throw new CrlInvalidError('revocation list has no nextUpdate')
  const nextUpdate = timeOf(tbs[i++])

  const revoked = new Map<string, RevokedEntry>()
  if (tbs[i]?.tagClass === asn1.Class.UNIVERSAL && tbs[i]?.type === asn1.Type.SEQUENCE) {
    for (const entry of children(tbs[i++])) {
      const [serialNode, dateNode, entryExtensions] = children(entry)
      const serial = integerHex(serialNode!)
      let reason: string | undefined
      for (const ext of entryExtensions == null ? [] : children(entryExtensions)) {
        const { oid, critical, value } = extension(ext)
        if (oid === OID.cRLReason) {
          const code = parseDer(value)
          if (code.type !== asn1.Type.ENUMERATED || typeof code.value !== 'string') throw new CrlInvalidError('bad CRL reason code')
          reason = CRL_REASONS[code.value.charCodeAt(0)] ?? 'unspecified'
        } else if (critical) {
          throw new CrlInvalidError(`unknown critical CRL entry extension ${oid}`)
        }
      }
      if (revoked.has(serial)) throw new CrlInvalidError(`serial ${serial} listed twice`)
      revoked.set(serial, { serial, revokedAt: timeOf(dateNode), ...(reason == null ? {} : { reason }) })
    }
  }

  let number: bigint | undefined
  if (tbs[i]?.tagClass === asn1.Class.CONTEXT_SPECIFIC && tbs[i]?.type === 0) {
    for (const ext of children(children(tbs[i++])[0])) {
      const { oid, critical, value } = extension(ext)
      if (oid === OID.cRLNumber) {
        number = BigInt('0x' + integerHex(parseDer(value)))
      } else if (critical) {
        throw new CrlInvalidError(`unknown critical CRL extension ${oid}`)
      }
    }
  }
  if (i !== tbs.length) throw new CrlInvalidError('revocation list has unexpected fields')
  if (number == null) throw new CrlInvalidError('revocation list has no crlNumber')
  return {
    tbs: signedPart(der),
    algorithm,
    signature: bitStringBytes(signatureNode),
    issuer: derOf(issuerNode!),
    thisUpdate,
    nextUpdate,
    number,
    revoked
  }
}

function extension (node: NodeForge.asn1.Asn1): { oid: string, critical: boolean, value: Buffer } {
  const parts = children(node)
  const value = parts.at(-1)
  if (value?.type !== forge.asn1.Type.OCTETSTRING || typeof value.value !== 'string' || parts.length < 2 || parts.length > 3) {
    throw new RangeError('bad extension')
  }
  const critical = parts.length === 3 && parts[1]?.type === forge.asn1.Type.BOOLEAN && parts[1].value !== '\x00'
  return { oid: oidOf(parts[0]), critical, value: Buffer.from(value.value, 'binary') }
}
