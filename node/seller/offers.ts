// What a seller signs (docs/protocol.md, Signed objects): terms bound into the escrows' exponent, the key
// split t-of-n and each share wrapped for its escrow, and device-bound licences.
import { randomBytes } from 'node:crypto'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  devicePartCommitment, escrowPartCommitment, keyCommitment, os2ip, i2ospMod, priceExponent, splitDeviceBound, splitSecret, wrapDeviceKey, wrapShare, SALT_LENGTH, DEVICE_KEY_LENGTH
} from '../../device/crypto/index.ts'
import { termsCid } from '../../device/objects/market.ts'
import { signWithPeerKey, signedId } from '../../device/objects/signed.ts'
import type { Licence, Offer, Terms, WrappedShareRef } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'

export interface OfferInput {
  /** the seller's libp2p key: signs the offer and names the seller account */
  sellerKey: PrivateKey
  terms: Omit<Terms, 'v' | 'seller'>
  title: string
  tags: string[]
  /** K of the work */
  key: Uint8Array
  /** the content salt of the work's manifest (HKDF salt of every share wrap) */
  contentSalt: Uint8Array
  /** wrap open shares (K_dev = 0) so buyers need no licence; false sells device-bound licences only */
  open: boolean
  /** how long a licence plays offline before it must be renewed, in ms */
  licenceTtl?: number
}

/** a month offline: a returned or revoked device stops playing within it */
export const DEFAULT_LICENCE_TTL_MS = 30 * 86_400_000

/** Splits `secret` t-of-n and wraps share j for escrow j under e_T */
export function wrapShares (secret: Uint8Array, terms: Terms, contentSalt: Uint8Array, offerSalt: Uint8Array): WrappedShareRef[] {
  const eT = priceExponent(termsCid(terms).bytes)
  const shares = splitSecret(secret, terms.t, terms.escrows.length)
  try {
    return shares.map((share, i) => {
      const j = i + 1
      const n = os2ip(terms.escrows[i]!.n)
      const wrapped = wrapShare({ n, eT, j, share, contentSalt, offerSalt })
      return { j, c: i2ospMod(wrapped.c, n), dem: wrapped.dem }
    })
  } finally {
    for (const share of shares) share.fill(0)
  }
}

export async function createOffer (input: OfferInput): Promise<Signed<Offer>> {
  const terms: Terms = { v: 1, seller: peerIdFromPrivateKey(input.sellerKey).toString(), ...input.terms }
  const salt = new Uint8Array(randomBytes(SALT_LENGTH))
  const body: Offer = {
    v: 1,
    terms,
    title: input.title,
    tags: input.tags,
    kc: keyCommitment(input.key),
    salt,
    shares: input.open ? wrapShares(input.key, terms, input.contentSalt, salt) : [],
    licenceTtl: input.licenceTtl ?? DEFAULT_LICENCE_TTL_MS
  }
  return signWithPeerKey('offer', body, input.sellerKey) as Promise<Signed<Offer>>
}

export interface LicenceInput {
  sellerKey: PrivateKey
  offer: Signed<Offer>
  key: Uint8Array
  contentSalt: Uint8Array
  /** the buyer device's id and certified encryption key (already verified by the caller) */
  device: { id: string, encryptionKey: KeyObject }
}

/**
 * A licence only that device can use: K_esc = K ⊕ K_dev to the escrows, K_dev to the
 * device, each part committed on its own so a dispute need open only the part at fault
 */
export async function createLicence (input: LicenceInput): Promise<Signed<Licence>> {
  const kDev = new Uint8Array(randomBytes(DEVICE_KEY_LENGTH))
  const kEsc = splitDeviceBound(input.key, kDev)
  try {
    const salt = new Uint8Array(randomBytes(SALT_LENGTH))
    const body: Licence = {
      v: 1,
      offer: signedId(input.offer),
      device: input.device.id,
      salt,
      shares: wrapShares(kEsc, input.offer.body.terms, input.contentSalt, salt),
      kDev: wrapDeviceKey(kDev, input.device.encryptionKey),
      kcEsc: escrowPartCommitment(kEsc),
      kcDev: devicePartCommitment(kDev)
    }
    return await (signWithPeerKey('licence', body, input.sellerKey) as Promise<Signed<Licence>>)
  } finally {
    kDev.fill(0)
    kEsc.fill(0)
  }
}
