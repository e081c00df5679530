// Small DER/PEM helpers around node-forge's ASN.1 parser. Signatures are always
// checked over the exact bytes received, so the signed part of a structure is
// sliced out of the original encoding, never re-encoded.
import { forge } from './forge.ts'
import type { NodeForge } from './forge.ts'

export const OID = {
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  commonName: '2.5.4.3',
  organizationalUnitName: '2.5.4.11',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  cRLNumber: '2.5.29.20',
  cRLReason: '2.5.29.21',
  authorityKeyIdentifier: '2.5.29.35'
} as const

/** Digest named by an RSA PKCS#1 v1.5 signature algorithm OID. */
export const RSA_SIGNATURE_HASH: Readonly<Record<string, string>> = {
  [OID.sha256WithRSAEncryption]: 'sha256',
  [OID.sha384WithRSAEncryption]: 'sha384',
  [OID.sha512WithRSAEncryption]: 'sha512'
}

export function toBinary (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('binary')
}

export function fromBinary (bytes: string): Buffer {
  return Buffer.from(bytes, 'binary')
}

/** Strict DER parse (no indefinite lengths, no trailing bytes, BIT STRINGs left opaque). */
export function parseDer (bytes: Uint8Array): NodeForge.asn1.Asn1 {
  const options = { strict: true, parseAllBytes: true, decodeBitStrings: false }
  return (forge.asn1.fromDer as unknown as (b: NodeForge.util.ByteStringBuffer, o: typeof options) => NodeForge.asn1.Asn1)(
    forge.util.createBuffer(toBinary(bytes)), options)
}

export interface DerElement {
  tag: number
  /** Offset of the first content byte. */
  contentStart: number
  /** Offset just past the element. */
  end: number
}

/** Reads the tag and definite length of the element starting at `offset`. */
export function readElement (bytes: Uint8Array, offset: number): DerElement {
  const tag = bytes[offset]
  let first = bytes[offset + 1]
  if (tag == null || first == null) throw new RangeError('DER element truncated')
  let length = 0
  let pos = offset + 2
  if (first < 0x80) {
    length = first
  } else {
    first &= 0x7f
    if (first === 0 || first > 4) throw new RangeError('unsupported DER length')
    for (let i = 0; i < first; i++) {
      const b = bytes[pos++]
      if (b == null) throw new RangeError('DER length truncated')
      length = length * 256 + b
    }
  }
  const end = pos + length
  if (end > bytes.byteLength) throw new RangeError('DER element overruns its buffer')
  return { tag, contentStart: pos, end }
}

/** The exact bytes of the first element inside the outer SEQUENCE (a tbsCertificate, tbsCertList, certificationRequestInfo). */
export function signedPart (bytes: Uint8Array): Uint8Array {
  const outer = readElement(bytes, 0)
  if (outer.tag !== 0x30 || outer.end !== bytes.byteLength) throw new RangeError('not one DER SEQUENCE')
  const inner = readElement(bytes, outer.contentStart)
  if (inner.tag !== 0x30) throw new RangeError('signed part is not a SEQUENCE')
  return bytes.subarray(outer.contentStart, inner.end)
}

/** Decodes exactly one PEM block of the given type; undefined if the text is not that. */
export function decodePem (pem: string, type: string): Buffer | undefined {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END ([A-Z0-9 ]+)-----/g
  const blocks = [...pem.matchAll(re)]
  if (blocks.length !== 1) return undefined
  const [whole, begin, body, end] = blocks[0]!
  if (begin !== type || end !== type) return undefined
  if (pem.replace(whole, '').trim() !== '') return undefined
  const der = Buffer.from(body!.replace(/[\r\n]/g, ''), 'base64')
  return der.byteLength > 0 ? der : undefined
}

export function encodePem (der: Uint8Array, type: string): string {
  const b64 = Buffer.from(der).toString('base64')
  return `-----BEGIN ${type}-----\n${b64.match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END ${type}-----\n`
}

/** Hex of a DER INTEGER's content in the canonical serial spelling (no leading zeros). */
export function integerHex (node: NodeForge.asn1.Asn1): string {
  if (node.tagClass !== forge.asn1.Class.UNIVERSAL || node.type !== forge.asn1.Type.INTEGER || typeof node.value !== 'string' || node.value.length === 0) {
    throw new RangeError('expected an INTEGER')
  }
  return forge.util.bytesToHex(node.value).replace(/^0+(?=.)/, '')
}

/** A UTCTime or GeneralizedTime as a Date. */
export function timeOf (node: NodeForge.asn1.Asn1 | undefined): Date {
  if (node == null || node.tagClass !== forge.asn1.Class.UNIVERSAL || typeof node.value !== 'string') throw new RangeError('expected a time')
  if (node.type === forge.asn1.Type.UTCTIME) return forge.asn1.utcTimeToDate(node.value)
  if (node.type === forge.asn1.Type.GENERALIZEDTIME) return forge.asn1.generalizedTimeToDate(node.value)
  throw new RangeError('expected a time')
}

/** Time for X.509: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
export function timeToAsn1 (date: Date): NodeForge.asn1.Asn1 {
  const { asn1 } = forge
  const seconds = new Date(Math.floor(date.getTime() / 1000) * 1000)
  return seconds.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(seconds))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(seconds))
}

export function children (node: NodeForge.asn1.Asn1 | undefined): NodeForge.asn1.Asn1[] {
  if (node == null || !Array.isArray(node.value)) throw new RangeError('expected a constructed element')
  return node.value
}

export function oidOf (node: NodeForge.asn1.Asn1 | undefined): string {
  if (node == null || node.type !== forge.asn1.Type.OID || typeof node.value !== 'string') throw new RangeError('expected an OID')
  return forge.asn1.derToOid(node.value)
}

export interface NameAttribute {
  oid: string
  value: string
}

/** An RDNSequence as a list of single-valued attributes; multi-valued RDNs are refused. */
export function readName (node: NodeForge.asn1.Asn1 | undefined): NameAttribute[] {
  const { asn1 } = forge
  if (node == null || node.type !== asn1.Type.SEQUENCE) throw new RangeError('expected a Name')
  return children(node).map(rdn => {
    const set = children(rdn)
    if (rdn.type !== asn1.Type.SET || set.length !== 1) throw new RangeError('multi-valued RDN')
    const [type, value] = children(set[0])
    if (value == null || typeof value.value !== 'string') throw new RangeError('bad attribute value')
    const text = value.type === asn1.Type.UTF8 ? forge.util.decodeUtf8(value.value) : value.value
    return { oid: oidOf(type), value: text }
  })
}

/** The value of the one attribute with this OID, or undefined if absent or repeated. */
export function nameValue (name: NameAttribute[], oid: string): string | undefined {
  const found = name.filter(a => a.oid === oid)
  return found.length === 1 ? found[0]!.value : undefined
}

/** Content of a BIT STRING with no unused bits (signatures, keys). */
export function bitStringBytes (node: NodeForge.asn1.Asn1 | undefined): Buffer {
  if (node == null || node.type !== forge.asn1.Type.BITSTRING || typeof node.value !== 'string' || node.value.charCodeAt(0) !== 0) {
    throw new RangeError('expected a BIT STRING of whole bytes')
  }
  return fromBinary(node.value.slice(1))
}

export function derOf (node: NodeForge.asn1.Asn1): Buffer {
  return fromBinary(forge.asn1.toDer(node).getBytes())
}

/** The subject Name of a certificate (DER in), exact DER out. */
export function certificateSubject (certificate: Uint8Array): Buffer {
  const tbs = children(children(parseDer(certificate))[0])
  const offset = tbs[0]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC ? 1 : 0
  const name = tbs[offset + 4]
  if (name == null) throw new RangeError('tbsCertificate too short')
  return derOf(name)
}
