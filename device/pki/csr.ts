// PKCS#10 certificate signing requests: made by a device (or an escrow) with
// its own key, which proves possession; inspected by the agency before issuing.
// The private key stays a node:crypto KeyObject: forge only lays out the ASN.1.
import { createPublicKey, sign, verify } from 'node:crypto'
import { wholeForge } from './forge.ts'
import { InvalidArgumentError } from '../crypto/errors.ts'
import {
  OID, RSA_SIGNATURE_HASH, bitStringBytes, children, decodePem, derOf,
  nameValue, oidOf, parseDer, readName, signedPart, toBinary
} from './der.ts'
import { BadCsrError } from './errors.ts'
import { MAX_RSA_BITS, MIN_RSA_BITS, keyIdOf } from './names.ts'
import type { KeyObject } from 'node:crypto'
import type { NodeForge } from './forge.ts'

export interface CsrSubject {
  commonName: string
  organizationalUnit: string
}

/** Largest CSR text accepted (a 8192-bit key and its signature fit well within it). */
export const MAX_CSR_PEM_LENGTH = 8192

export interface CsrInfo extends CsrSubject {
  publicKey: KeyObject
  /** RSA modulus length. */
  bits: number
  /** SHA-256 of the SPKI DER, hex. */
  keyId: string
}

/** A PKCS#10 request for `subject`, signed with SHA-256 by `privateKey` (RSA, PKCS#1 v1.5). */
export function createCsr (privateKey: KeyObject, publicKey: KeyObject, subject: CsrSubject): string {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') throw new InvalidArgumentError('createCsr needs an RSA private key')
  if (publicKey.asymmetricKeyType !== 'rsa') throw new InvalidArgumentError('createCsr needs an RSA public key')
  const { pki, asn1 } = wholeForge()
  const csr = pki.createCertificationRequest()
  csr.publicKey = pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
  csr.setSubject([
    { type: OID.commonName, value: subject.commonName, valueTagClass: asn1.Type.UTF8 } as any,
    { type: OID.organizationalUnitName, value: subject.organizationalUnit, valueTagClass: asn1.Type.UTF8 } as any
  ])
  csr.signatureOid = OID.sha256WithRSAEncryption
  csr.siginfo.algorithmOid = OID.sha256WithRSAEncryption
  const info = (pki as unknown as { getCertificationRequestInfo: (c: typeof csr) => NodeForge.asn1.Asn1 }).getCertificationRequestInfo(csr)
  const infoDer = derOf(info)
  const signature = sign('sha256', infoDer, privateKey)
  // a mismatched pair would produce a CSR no agency accepts: fail here, clearly
  if (!verify('sha256', infoDer, publicKey, signature)) throw new InvalidArgumentError('createCsr: the public key does not match the private key')
  csr.certificationRequestInfo = info
  csr.signature = toBinary(signature)
  return pki.certificationRequestToPem(csr)
}

/**
 * Parses a PEM CSR and checks its own signature over the exact bytes received,
 * its RSA key size, and that its subject is exactly one CN and one OU.
 * Every failure is a BadCsrError saying what is wrong.
 */
export function inspectCsr (pem: string): CsrInfo {
  if (typeof pem !== 'string' || pem.length > MAX_CSR_PEM_LENGTH) throw new BadCsrError('CSR must be a PEM text of at most 8192 characters')
  const der = decodePem(pem, 'CERTIFICATE REQUEST')
  if (der == null) throw new BadCsrError('not one PEM "CERTIFICATE REQUEST" block')
  let info: Omit<CsrInfo, 'keyId'>
  let signed: Uint8Array
  let signature: Buffer
  let hash: string | undefined
  try {
    const [cri, algorithm, sig] = children(parseDer(der))
    const [version, subject, spki] = children(cri)
    if (version?.value !== '\x00') throw new BadCsrError('CSR version must be 1')
    hash = RSA_SIGNATURE_HASH[oidOf(children(algorithm)[0])]
    signature = bitStringBytes(sig)
    signed = signedPart(der)
    const name = readName(subject)
    const commonName = nameValue(name, OID.commonName)
    const organizationalUnit = nameValue(name, OID.organizationalUnitName)
    if (commonName == null || organizationalUnit == null || name.length !== 2) {
      throw new BadCsrError('CSR subject must be exactly one CN and one OU')
    }
    const publicKey = createPublicKey({ key: derOf(spki!), format: 'der', type: 'spki' })
    if (publicKey.asymmetricKeyType !== 'rsa') throw new BadCsrError(`CSR key must be RSA, not ${publicKey.asymmetricKeyType ?? 'unknown'}`)
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
    info = { commonName, organizationalUnit, publicKey, bits }
  } catch (err) {
    if (err instanceof BadCsrError) throw err
    throw new BadCsrError('CSR is not a well-formed PKCS#10 request')
  }
  if (hash == null) throw new BadCsrError('CSR must be signed with sha256WithRSAEncryption (or sha384/sha512)')
  if (info.bits < MIN_RSA_BITS || info.bits > MAX_RSA_BITS) throw new BadCsrError(`CSR key has ${info.bits} bits; ${MIN_RSA_BITS}..${MAX_RSA_BITS} required`)
  if (!verify(hash, signed, info.publicKey, signature)) throw new BadCsrError('CSR signature does not verify with its own key')
  return { ...info, keyId: keyIdOf(info.publicKey) }
}

