// A seller and escrows in-process, for device tests that need a whole purchase
// without the network: real offers, real wraps, real private operations.
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encryptFile } from '../../device/content-file.ts'
import { generateContentSecrets } from '../../device/crypto/index.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf, parseSignedUnblindRequest } from '../../device/objects/market.ts'
import { signWithPeerKey, signedId, verifyDeviceSigned } from '../../device/objects/signed.ts'
import { EscrowKey } from '../../node/escrow/unblind.ts'
import { createOffer } from '../../node/seller/offers.ts'
import type { ContentManifest, ContentSecrets } from '../../device/crypto/index.ts'
import type { Offer, Terms, UnblindRequest } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { TrustStore } from '../../device/pki/index.ts'
import type { PrivateKey } from '@libp2p/interface'

export interface TestEscrow {
  peerKey: PrivateKey
  peer: string
  key: EscrowKey
}

export async function createEscrows (count: number, bits = 2048): Promise<TestEscrow[]> {
  return Promise.all(Array.from({ length: count }, async () => {
    const peerKey = await generateKeyPair('Ed25519')
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits })
    return { peerKey, peer: peerIdFromPrivateKey(peerKey).toString(), key: new EscrowKey(privateKey) }
  }))
}

export interface TestWork {
  plaintextFile: string
  ciphertextFile: string
  manifest: ContentManifest
  manifestBytes: Uint8Array
  contentId: string
  secrets: ContentSecrets
}

/** Encrypts a file into `dir` with the content format */
export async function encryptWork (dir: string, name: string, plaintextFile: string, chunkSize = 64 * 1024): Promise<TestWork> {
  const secrets = generateContentSecrets()
  const ciphertextFile = join(dir, `${name}.kf`)
  const manifest = await encryptFile(plaintextFile, ciphertextFile, { ...secrets, chunkSize })
  return { plaintextFile, ciphertextFile, manifest, manifestBytes: encodeObject(manifest), contentId: contentIdOf(manifest).toString(), secrets }
}

export interface OfferOptions {
  t: number
  price?: number
  open?: boolean
  expiry?: number
  /** how long a licence plays offline, in ms */
  licenceTtl?: number
}

export async function offerWork (sellerKey: PrivateKey, work: TestWork, escrows: TestEscrow[], options: OfferOptions): Promise<Signed<Offer>> {
  const terms: Omit<Terms, 'v' | 'seller'> = {
    content: contentIdOf(work.manifest),
    price: options.price ?? 250,
    currency: 'EUR',
    escrows: escrows.map(e => ({ peer: e.peer, n: e.key.modulus })),
    t: options.t,
    expiry: options.expiry ?? Date.now() + 3_600_000
  }
  return createOffer({ sellerKey, terms, title: 'test work', tags: ['test'], key: work.secrets.key, contentSalt: work.secrets.salt, open: options.open ?? true, licenceTtl: options.licenceTtl })
}

/**
 * An escrow answering a device request: checks the device signature under the
 * trust store, then z = b^d_T under the request's terms, or under `terms` when
 * given (a wrong answer, as from a cheaper offer).
 */
export async function answerRequest (escrow: TestEscrow, requestBytes: Uint8Array, trust: TrustStore, options: { terms?: Terms } = {}): Promise<{ answer: Uint8Array, z: Uint8Array, request: Signed<UnblindRequest> }> {
  const request = parseSignedUnblindRequest(decodeObject(requestBytes))
  verifyDeviceSigned(request, 'unblind-request', der => trust.verify(der, { purpose: 'device-signing' }))
  const z = escrow.key.unblind(request.body.b, options.terms ?? request.body.offer.body.terms)
  const answer = await signWithPeerKey('unblind-answer', {
    v: 1,
    request: signedId(request),
    purchase: request.body.purchase,
    j: request.body.j,
    z,
    hold: `hold-${request.body.purchase}-${request.body.j}`
  }, escrow.peerKey)
  return { answer: encodeObject(answer), z, request }
}

