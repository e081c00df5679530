// Naming conventions of keyfair certificates: who a certificate names, and what
// each purpose allows its key to do.
import { createHash, createPublicKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

export type CertificatePurpose = 'device-signing' | 'device-encryption' | 'escrow'

export const CERTIFICATE_PURPOSES: readonly CertificatePurpose[] = ['device-signing', 'device-encryption', 'escrow']

/** Subject OU of both device certificates; their CN is the device id. */
export const DEVICE_UNIT = 'keyfair device'
/** Subject OU of an escrow certificate; its CN is the escrow's libp2p peer id. */
export const ESCROW_UNIT = 'keyfair escrow'

/** Smallest RSA modulus the agency certifies and a verifier accepts. */
export const MIN_RSA_BITS = 2048
/** Largest RSA modulus accepted (bounds the cost of one verification). */
export const MAX_RSA_BITS = 8192

export interface KeyUsage {
  digitalSignature: boolean
  keyEncipherment: boolean
}

export interface PurposeProfile {
  organizationalUnit: string
  /** The exact keyUsage bits a certificate of this purpose carries (critical). */
  keyUsage: KeyUsage
}

export const PURPOSE_PROFILES: Readonly<Record<CertificatePurpose, PurposeProfile>> = {
  'device-signing': { organizationalUnit: DEVICE_UNIT, keyUsage: { digitalSignature: true, keyEncipherment: false } },
  'device-encryption': { organizationalUnit: DEVICE_UNIT, keyUsage: { digitalSignature: false, keyEncipherment: true } },
  escrow: { organizationalUnit: ESCROW_UNIT, keyUsage: { digitalSignature: true, keyEncipherment: true } }
}

export function isCertificatePurpose (value: unknown): value is CertificatePurpose {
  return typeof value === 'string' && (CERTIFICATE_PURPOSES as readonly string[]).includes(value)
}

/** A device's name: lowercase hex of the first 16 bytes of SHA-256 of its signing key's SPKI DER. */
export function deviceIdOf (signingPublicKey: KeyObject): string {
  return createHash('sha256').update(spkiOf(signingPublicKey)).digest().subarray(0, 16).toString('hex')
}

/** SHA-256 of a key's SPKI DER, hex: names a key independently of any certificate. */
export function keyIdOf (publicKey: KeyObject): string {
  return createHash('sha256').update(spkiOf(publicKey)).digest('hex')
}

/** SPKI DER of a public key (or of the public half of a private key). */
export function spkiOf (key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key
  return publicKey.export({ type: 'spki', format: 'der' })
}

/**
 * One spelling per serial number: lowercase hex without separators or leading
 * zeros (OpenSSL prints `0A:1B…`, node:crypto `0A1B…`). Undefined if not hex.
 */
export function canonicalSerial (serial: string): string | undefined {
  const hex = serial.trim().replaceAll(':', '').toLowerCase()
  if (!/^[0-9a-f]{1,64}$/.test(hex)) return undefined
  return hex.replace(/^0+(?=.)/, '')
}
