// Signed objects (docs/protocol.md, Signed objects): { v, kind, body, signer, sig }, encoded with dag-cbor and
// named by the CID of that encoding. The signature covers a domain label for the kind
// and the CID of the body, so a signature for one kind never verifies as another.
// Offers, licences and escrow answers are signed with the node's libp2p peer key;
// device requests, receipts and disputes with the device's RSA-PSS key, whose
// certificate travels in `signer` and is checked by the caller's trust store.
import { constants, createPrivateKey, sign as cryptoSign, verify as rsaVerify } from 'node:crypto'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { concat, utf8 } from '../crypto/bytes.ts'
import { ownBytes } from '../crypto/aead.ts'
import { cidOfBytes, encodeObject, objectCid } from './codec.ts'
import { ObjectError, SignatureError } from './errors.ts'
import { createShapeChecks } from './validate.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { KeyObject } from 'node:crypto'

export const PEER_SIGNED_KINDS = ['offer', 'licence', 'unblind-answer', 'renewal'] as const
export const DEVICE_SIGNED_KINDS = ['unblind-request', 'receipt', 'dispute', 'renewal-request'] as const
export type PeerSignedKind = typeof PEER_SIGNED_KINDS[number]
export type DeviceSignedKind = typeof DEVICE_SIGNED_KINDS[number]
export type ObjectKind = PeerSignedKind | DeviceSignedKind

/** RSASSA-PSS-SHA256 with a salt as long as the hash */
export const PSS_SALT_LENGTH = 32
const MAX_SIGNER_BYTES = 8192
const MAX_SIG_BYTES = 1024

/** Who signed: a libp2p public key (protobuf), or a device signing certificate (DER) */
export type Signer = { peer: Uint8Array } | { device: Uint8Array }

export interface Signed<T, K extends ObjectKind = ObjectKind> {
  v: 1
  kind: K
  body: T
  signer: Signer
  sig: Uint8Array
}

const check = createShapeChecks(message => new ObjectError(message))

export function signingInput (kind: ObjectKind, body: unknown, bodyCid: CID = objectCid(body)): Uint8Array {
  return concat(utf8(`keyfair/v1/sig:${kind}`), new Uint8Array([0]), bodyCid.bytes)
}

/** The name of a signed object: the CID of its whole encoding */
export function signedId (signed: Signed<unknown>): CID {
  return cidOfBytes(encodeObject(signed))
}

export async function signWithPeerKey<T> (kind: PeerSignedKind, body: T, key: PrivateKey): Promise<Signed<T, PeerSignedKind>> {
  const input = signingInput(kind, body)
  // an Ed25519 key signs through OpenSSL with its KeyObject imported once, not once per
  // signature; Ed25519 is deterministic, so these are the bytes key.sign would give
  const ed25519 = ed25519KeyObject(key)
  const sig = ed25519 != null ? ownBytes(cryptoSign(null, input, ed25519)) : await key.sign(input)
  return { v: 1, kind, body, signer: { peer: publicKeyToProtobuf(key.publicKey) }, sig }
}

const ed25519KeyObjects = new WeakMap<PrivateKey, KeyObject>()

function ed25519KeyObject (key: PrivateKey): KeyObject | undefined {
  if (key.type !== 'Ed25519' || key.raw.length !== 64) return undefined
  let keyObject = ed25519KeyObjects.get(key)
  if (keyObject == null) {
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
    // libp2p's raw Ed25519 private key is seed ‖ public key
    keyObject = createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: b64(key.raw.subarray(0, 32)), x: b64(key.raw.subarray(32)) } })
    ed25519KeyObjects.set(key, keyObject)
  }
  return keyObject
}

/** Checks the signature; returns the signer's peer id as a string */
export async function verifyPeerSigned (signed: Signed<unknown>, kind: PeerSignedKind): Promise<string> {
  checkKind(signed, kind)
  if (!('peer' in signed.signer)) throw new SignatureError(`${kind} must be signed by a peer key`)
  let ok = false
  let peer: string
  try {
    const key = publicKeyFromProtobuf(signed.signer.peer)
    peer = peerIdFromPublicKey(key).toString()
    ok = await key.verify(signingInput(kind, signed.body), signed.sig)
  } catch {
    throw new SignatureError(`${kind} signer is not a valid peer key`)
  }
  if (!ok) throw new SignatureError(`${kind} signature does not verify`)
  return peer
}

export function signWithDeviceKey<T> (kind: DeviceSignedKind, body: T, key: KeyObject, certificate: Uint8Array): Signed<T, DeviceSignedKind> {
  const sig = ownBytes(cryptoSign('sha256', signingInput(kind, body), {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: PSS_SALT_LENGTH
  }))
  return { v: 1, kind, body, signer: { device: certificate }, sig }
}

/**
 * The same signature computed on libuv's thread pool: a device signing several requests
 * at once (the t escrows of a purchase) uses more than one core.
 */
export async function signWithDeviceKeyInPool<T> (kind: DeviceSignedKind, body: T, key: KeyObject, certificate: Uint8Array): Promise<Signed<T, DeviceSignedKind>> {
  const input = signingInput(kind, body)
  const sig = await new Promise<Uint8Array>((resolve, reject) => {
    cryptoSign('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH }, (err, signature) => {
      if (err != null) reject(err)
      else resolve(ownBytes(signature))
    })
  })
  return { v: 1, kind, body, signer: { device: certificate }, sig }
}

/**
 * Checks a device signature. `certified` must verify the signer's certificate (chain,
 * revocation, purpose) and return its public key; it throws when it does not.
 * `bodyCid`, when the caller has it, must be `objectCid(signed.body)`.
 */
export function verifyDeviceSigned<C> (
  signed: Signed<unknown>,
  kind: DeviceSignedKind,
  certified: (certificate: Uint8Array) => C & { publicKey: KeyObject },
  bodyCid?: CID
): C & { publicKey: KeyObject } {
  checkKind(signed, kind)
  if (!('device' in signed.signer)) throw new SignatureError(`${kind} must be signed by a device`)
  const certificate = certified(signed.signer.device)
  let ok = false
  try {
    ok = rsaVerify('sha256', signingInput(kind, signed.body, bodyCid), {
      key: certificate.publicKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: PSS_SALT_LENGTH
    }, signed.sig)
  } catch {
    ok = false
  }
  if (!ok) throw new SignatureError(`${kind} signature does not verify`)
  return certificate
}

function checkKind (signed: Signed<unknown>, kind: ObjectKind): void {
  if (signed.kind !== kind) throw new SignatureError(`expected a signed ${kind}, got ${String(signed.kind)}`)
}

/** Shape of the envelope; the body is parsed by the caller for its kind */
export function parseSigned (value: unknown, kind: ObjectKind): Signed<unknown> {
  const o = check.expectRecord(value, `signed ${kind}`)
  if (o.v !== 1) throw new ObjectError(`signed ${kind}: unsupported version`)
  if (o.kind !== kind) throw new ObjectError(`expected a signed ${kind}, got ${String(o.kind)}`)
  const signerMap = check.expectRecord(o.signer, `${kind} signer`)
  let signer: Signer
  if (signerMap.peer !== undefined && signerMap.device === undefined) {
    signer = { peer: check.expectBytes(signerMap.peer, `${kind} signer.peer`, MAX_SIGNER_BYTES, 1) }
  } else if (signerMap.device !== undefined && signerMap.peer === undefined) {
    signer = { device: check.expectBytes(signerMap.device, `${kind} signer.device`, MAX_SIGNER_BYTES, 1) }
  } else {
    throw new ObjectError(`${kind} signer must be one of peer or device`)
  }
  if (Object.keys(o).length !== 5 || Object.keys(signerMap).length !== 1) throw new ObjectError(`signed ${kind} has unknown fields`)
  return { v: 1, kind, body: o.body, signer, sig: check.expectBytes(o.sig, `${kind} sig`, MAX_SIG_BYTES, 1) }
}
