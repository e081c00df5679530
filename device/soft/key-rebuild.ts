// K rebuilt inside the device from a purchase's checked shares (and, for a device-bound
// licence, its K_dev), each part checked against its commitment. K never leaves: the
// caller uses it and wipes it.
import {
  combineDeviceBound, combineShares, openOfferDeviceKey, os2ip, unwrapDeviceKey, unwrapShare,
  verifyDevicePartCommitment, verifyEscrowPartCommitment, verifyKeyCommitment
} from '../crypto/index.ts'
import { acceptedOf, sharesOf } from './purchase-records.ts'
import type { DisputePart, Licence } from '../objects/market.ts'
import type { DeviceSecrets } from '../store/keystore.ts'
import type { OpenPurchase } from './purchase-records.ts'

/** K rebuilt and checked, or why not (and, for a licence, which part is at fault) */
export interface RebuiltKey {
  key?: Uint8Array
  fault?: DisputePart
  failure?: string
}

/** K_esc from the checked shares, or why they do not rebuild it */
interface EscrowPart {
  kEsc?: Uint8Array
  failure?: string
}

/**
 * Rebuilds K from the purchase's checked shares and its licence, checking each part of
 * a licence against its own commitment (kcEsc, kcDev) and K against the offer's kc.
 * Returns K (the caller wipes it) or the part at fault.
 */
export function rebuildKey (secrets: DeviceSecrets, p: OpenPurchase): RebuiltKey {
  const { kEsc, failure } = rebuildEscrowPart(p)
  try {
    const licence = p.licence?.body
    if (licence == null) return withOfferKey(p, kEsc, failure)
    return withLicence(secrets, p, licence, kEsc, failure)
  } finally {
    kEsc?.fill(0)
  }
}

function rebuildEscrowPart (p: OpenPurchase): EscrowPart {
  const { t } = p.offer.body.terms
  const wrapped = sharesOf(p)
  const offerSalt = p.licence?.body.salt ?? p.offer.body.salt
  const shares: Uint8Array[] = []
  try {
    for (const s of acceptedOf(p.record).slice(0, t)) {
      const n = os2ip(p.offer.body.terms.escrows[s.j - 1]!.n)
      shares.push(unwrapShare({ x: os2ip(s.x!), n, j: s.j, dem: wrapped[s.j - 1]!.dem, contentSalt: p.manifest.salt, offerSalt }))
    }
    return { kEsc: combineShares(shares, t) }
  } catch (err: any) {
    return { failure: `the checked shares do not rebuild the key (${String(err.code ?? err.name)})` }
  } finally {
    for (const share of shares) share.fill(0)
  }
}

/** An offer sold without a licence: K is K_esc with the offer's open device part */
function withOfferKey (p: OpenPurchase, kEsc: Uint8Array | undefined, failure: string | undefined): RebuiltKey {
  if (kEsc == null) return { failure }
  const key = combineDeviceBound(kEsc, openOfferDeviceKey())
  if (verifyKeyCommitment(key, p.offer.body.kc)) return { key }
  key.fill(0)
  return { failure: 'the key does not match the offer\'s commitment' }
}

/** A device-bound licence: each part against its own commitment, then K against the offer's */
function withLicence (secrets: DeviceSecrets, p: OpenPurchase, licence: Licence, kEsc: Uint8Array | undefined, failure: string | undefined): RebuiltKey {
  if (kEsc != null && !verifyEscrowPartCommitment(kEsc, licence.kcEsc)) failure = 'the shares\' part of the key does not match the licence\'s commitment'
  if (failure != null || kEsc == null) return { fault: 'escrow', failure }
  let kDev: Uint8Array | undefined
  try {
    try {
      kDev = unwrapDeviceKey(licence.kDev, secrets.encryptionKey)
    } catch {
      return { fault: 'device', failure: 'the licence\'s device part does not decrypt' }
    }
    if (!verifyDevicePartCommitment(kDev, licence.kcDev)) return { fault: 'device', failure: 'the licence\'s device part does not match its commitment' }
    const key = combineDeviceBound(kEsc, kDev)
    if (verifyKeyCommitment(key, p.offer.body.kc)) return { key }
    key.fill(0)
    return { fault: 'both', failure: 'each part of the licence matches its commitment, but together they do not make the offer\'s key' }
  } finally {
    kDev?.fill(0)
  }
}
