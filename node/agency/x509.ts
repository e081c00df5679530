// Building the agency's X.509 objects. node-forge lays out the ASN.1; every
// signature is made by node:crypto with the CA key loaded once as a KeyObject
// (forge's RSA is far slower, and the key never has to become a forge key).
import { createHash, randomBytes, sign } from 'node:crypto'
import { wholeForge } from '../../device/pki/forge.ts'
import { CRL_REASONS, PURPOSE_PROFILES, encodePem } from '../../device/pki/index.ts'
import { OID, derOf, fromBinary, parseDer, timeToAsn1, toBinary } from '../../device/pki/der.ts'
import type { CertificatePurpose } from '../../device/pki/index.ts'
import type { KeyObject } from 'node:crypto'
import type { NodeForge } from '../../device/pki/forge.ts'

/** The CA as it signs: its key, and its subject and key identifier as they appear in what it issues. */
export interface Issuer {
  privateKey: KeyObject
  /** The root's subject Name, exact DER: the issuer of everything it signs. */
  subject: Uint8Array
  /** SHA-1 of the root's RSAPublicKey (RFC 5280 §4.2.1.2 method 1), raw bytes. */
  keyIdentifier: Uint8Array
}

export interface SubjectNames {
  commonName: string
  organizationalUnit?: string
}

export interface Validity {
  notBefore: Date
  notAfter: Date
}

/** A random positive 127-bit serial in canonical hex (16 bytes, high bit clear, first byte non-zero). */
export function randomSerial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) || 0x01
  return bytes.toString('hex')
}

export function keyIdentifierOf (publicKey: KeyObject): Buffer {
  return createHash('sha1').update(publicKey.export({ type: 'pkcs1', format: 'der' })).digest()
}

/** A self-signed root: CA:true and keyCertSign+cRLSign, both critical. */
export function createRootCertificate (privateKey: KeyObject, publicKey: KeyObject, names: SubjectNames, validity: Validity, serial = randomSerial()): string {
  const keyIdentifier = keyIdentifierOf(publicKey)
  const cert = newCertificate(publicKey, names, validity, serial)
  cert.setIssuer(cert.subject.attributes)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: toBinary(keyIdentifier) }
  ])
  return signCertificate(cert, { privateKey, subject: derOf(wholeForge().pki.distinguishedNameToAsn1(cert.subject)), keyIdentifier })
}

/** A leaf certificate for one purpose: CA:false, the purpose's keyUsage (critical), key identifiers. */
export function issueCertificate (issuer: Issuer, publicKey: KeyObject, names: SubjectNames, purpose: CertificatePurpose, validity: Validity, serial = randomSerial()): string {
  const usage = PURPOSE_PROFILES[purpose].keyUsage
  const cert = newCertificate(publicKey, names, validity, serial)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: usage.digitalSignature, keyEncipherment: usage.keyEncipherment, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: toBinary(issuer.keyIdentifier) }
  ])
  return signCertificate(cert, issuer)
}

export interface CrlEntry {
  serial: string
  revokedAt: Date
  reason: string
}

export interface CrlContent {
  number: number
  thisUpdate: Date
  nextUpdate: Date
  revoked: CrlEntry[]
}

/** An X.509 v2 CRL (DER): crlNumber and authorityKeyIdentifier extensions, a reason code per entry. */
export function buildCrl (issuer: Issuer, content: CrlContent): Uint8Array {
  const forge = wholeForge()
  const { asn1 } = forge
  const { Class, Type } = asn1
  const seq = (value: NodeForge.asn1.Asn1[]): NodeForge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, value)
  const oid = (id: string): NodeForge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(id).getBytes())
  const integer = (hex: string): NodeForge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(integerHex(hex)))
  const octets = (node: NodeForge.asn1.Asn1): NodeForge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, asn1.toDer(node).getBytes())
  const algorithm = (): NodeForge.asn1.Asn1 => seq([oid(OID.sha256WithRSAEncryption), asn1.create(Class.UNIVERSAL, Type.NULL, false, '')])

  const fields: NodeForge.asn1.Asn1[] = [
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(1).getBytes()),
    algorithm(),
    parseDer(issuer.subject),
    timeToAsn1(content.thisUpdate),
    timeToAsn1(content.nextUpdate)
  ]
  if (content.revoked.length > 0) {
    fields.push(seq(content.revoked.map(entry => {
      const entryFields = [integer(entry.serial), timeToAsn1(entry.revokedAt)]
      const code = CRL_REASONS.indexOf(entry.reason as typeof CRL_REASONS[number])
      if (code > 0) {
        const reason = asn1.create(Class.UNIVERSAL, Type.ENUMERATED, false, String.fromCharCode(code))
        entryFields.push(seq([seq([oid(OID.cRLReason), octets(reason)])]))
      }
      return seq(entryFields)
    })))
  }
  const aki = seq([asn1.create(Class.CONTEXT_SPECIFIC, 0, false, toBinary(issuer.keyIdentifier))])
  const crlNumber = asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(content.number).getBytes())
  fields.push(asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [seq([
    seq([oid(OID.authorityKeyIdentifier), octets(aki)]),
    seq([oid(OID.cRLNumber), octets(crlNumber)])
  ])]))
  const tbs = seq(fields)
  const tbsDer = derOf(tbs)
  const signature = sign('sha256', tbsDer, issuer.privateKey)
  const crl = seq([
    tbs,
    algorithm(),
    asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, '\x00' + toBinary(signature))
  ])
  return derOf(crl)
}

/** Hex of a non-negative integer as DER INTEGER content: even length, a leading 00 if the high bit is set. */
function integerHex (hex: string): string {
  let h = hex.length % 2 === 1 ? '0' + hex : hex
  if (Number.parseInt(h.slice(0, 2), 16) >= 0x80) h = '00' + h
  return h
}

function newCertificate (publicKey: KeyObject, names: SubjectNames, validity: Validity, serial: string): NodeForge.pki.Certificate {
  const forge = wholeForge()
  const cert = forge.pki.createCertificate()
  cert.version = 2
  cert.serialNumber = integerHex(serial)
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
  // whole seconds: X.509 times have no fractions, and the stored record must match the certificate
  cert.validity.notBefore = new Date(Math.floor(validity.notBefore.getTime() / 1000) * 1000)
  cert.validity.notAfter = new Date(Math.floor(validity.notAfter.getTime() / 1000) * 1000)
  const attributes: NodeForge.pki.CertificateField[] = [{ type: OID.commonName, value: names.commonName, valueTagClass: forge.asn1.Type.UTF8 } as any]
  if (names.organizationalUnit != null) {
    attributes.push({ type: OID.organizationalUnitName, value: names.organizationalUnit, valueTagClass: forge.asn1.Type.UTF8 } as any)
  }
  cert.setSubject(attributes)
  return cert
}

function signCertificate (cert: NodeForge.pki.Certificate, issuer: Issuer): string {
  const forge = wholeForge()
  cert.signatureOid = OID.sha256WithRSAEncryption
  cert.siginfo.algorithmOid = OID.sha256WithRSAEncryption
  const tbs = (forge.pki as unknown as { getTBSCertificate: (c: NodeForge.pki.Certificate) => NodeForge.asn1.Asn1 }).getTBSCertificate(cert)
  // the issuer is the root's subject byte for byte, whatever forge would re-encode
  ;(tbs.value as NodeForge.asn1.Asn1[])[3] = parseDer(issuer.subject)
  const signature = sign('sha256', derOf(tbs), issuer.privateKey)
  cert.tbsCertificate = tbs
  cert.signature = toBinary(signature)
  const der = fromBinary(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes())
  return encodePem(der, 'CERTIFICATE')
}
