// The device's purchase records: sealed to disk by the device (their only writer), opened
// and checked once, and kept opened in memory while a purchase takes its steps.
import { logger } from '@libp2p/logger'
import { BadDeviceRequestError, UnknownPurchaseError } from '../errors.ts'
import { priceExponent } from '../crypto/index.ts'
import { decodeObject } from '../objects/codec.ts'
import { DISPUTE_PARTS, contentIdOf, parseManifest, parseSignedLicence, parseSignedOffer, termsCid } from '../objects/market.ts'
import { signedId, verifyPeerSigned } from '../objects/signed.ts'
import { createShapeChecks } from '../objects/validate.ts'
import type { ContentManifest } from '../crypto/index.ts'
import type { PurchaseInfo, PurchaseState } from '../interface.ts'
import type { DisputePart, Licence, Offer, WrappedShareRef } from '../objects/market.ts'
import type { Signed } from '../objects/signed.ts'
import type { DeviceSecrets } from '../store/keystore.ts'
import type { DeviceSession } from './session.ts'

export const check = createShapeChecks(message => new BadDeviceRequestError(`sealed record damaged: ${message}`))

export interface ShareState {
  j: number
  /** the blinding factor r_j, I2OSP in the length of n_j */
  r: Uint8Array
  /** the signed request as sent */
  request: Uint8Array
  /** x_j once the answer passed the check (wiped once the purchase is confirmed) */
  x?: Uint8Array
  /** the answer passed the check */
  accepted?: boolean
  faulty?: boolean
}

export interface PurchaseRecord {
  v: 1
  purchase: string
  offer: Uint8Array
  manifest: Uint8Array
  licence?: Uint8Array
  buyer: string
  state: PurchaseState
  createdAt: number
  shares: ShareState[]
  /** a failed device-bound purchase: the part of the licence at fault */
  fault?: DisputePart
}

/** A purchase record with its public objects parsed */
export interface OpenPurchase {
  record: PurchaseRecord
  offer: Signed<Offer>
  offerId: string
  manifest: ContentManifest
  licence?: Signed<Licence>
  eT: bigint
  /**
   * Checked shares held only in memory: an answer is not worth a disk write, since the
   * escrow answers a replay of its paid request with the same answer (nothing is charged
   * twice), so a crash only costs asking again. Such a purchase is never evicted.
   */
  unsaved?: boolean
}

/** purchases kept opened in memory at once (a purchase takes a few of its steps in a row) */
const MAX_OPEN_PURCHASES = 16

export class PurchaseRecords {
  private readonly session: DeviceSession
  private readonly log = logger('keyfair:device:purchases')
  private readonly exponents = new Map<string, bigint>()
  /** purchases opened this session, by id: the device is the only writer of its records */
  private readonly openPurchases = new Map<string, OpenPurchase>()
  /** what `purchases` lists, kept for every record read or written this session */
  private readonly purchaseInfos = new Map<string, PurchaseInfo>()

  constructor (session: DeviceSession) {
    this.session = session
    session.onForget(() => { this.forget() })
  }

  /** One purchase's info, from memory when it was read or written this session */
  async info (id: string): Promise<PurchaseInfo> {
    return this.purchaseInfos.get(id) ?? infoOf(await this.load(id))
  }

  /** Every purchase on disk, or those of one offer; a damaged record is skipped */
  async list (offer?: string): Promise<PurchaseInfo[]> {
    const out: PurchaseInfo[] = []
    for (const id of await this.session.store.listRecords('purchase')) {
      try {
        const info = await this.info(id)
        if (offer === undefined || info.offer === offer) out.push(info)
      } catch (err: any) {
        this.log.error('skipping purchase record %s: %s', id, err.code ?? err.name)
      }
    }
    return out
  }

  async fail (secrets: DeviceSecrets, p: OpenPurchase): Promise<void> {
    p.record.state = 'failed'
    await this.save(secrets, p)
  }

  /**
   * Seals a purchase record to disk. The opened copy stays cached only when the disk
   * holds exactly it: a failed write drops it, so nothing unsealed is ever relied on.
   */
  async save (secrets: DeviceSecrets, p: OpenPurchase): Promise<void> {
    try {
      await this.session.store.putRecord(secrets, 'purchase', p.record.purchase, p.record)
    } catch (err) {
      this.openPurchases.delete(p.record.purchase)
      this.purchaseInfos.delete(p.record.purchase)
      throw err
    }
    p.unsaved = false
    this.cache(p)
  }

  cache (p: OpenPurchase): void {
    this.openPurchases.delete(p.record.purchase)
    if (this.openPurchases.size >= MAX_OPEN_PURCHASES) {
      const evictable = [...this.openPurchases.values()].find(o => o.unsaved !== true)
      if (evictable != null) this.openPurchases.delete(evictable.record.purchase)
    }
    this.openPurchases.set(p.record.purchase, p)
    this.purchaseInfos.set(p.record.purchase, infoOf(p))
  }

  async load (id: string): Promise<OpenPurchase> {
    if (typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id)) throw new UnknownPurchaseError()
    const secrets = this.session.unlocked()
    // each step of a purchase would otherwise re-open and re-check the same record
    const cached = this.openPurchases.get(id)
    if (cached != null) return cached
    const opened = await this.read(secrets, id)
    this.cache(opened)
    return opened
  }

  /** Parses and checks a purchase's public objects: the offer's seller signature, manifest and licence */
  async parse (record: PurchaseRecord): Promise<OpenPurchase> {
    const offer = parseSignedOffer(decodeObject(record.offer))
    const seller = await verifyPeerSigned(offer, 'offer')
    if (seller !== offer.body.terms.seller) throw new BadDeviceRequestError('the offer is not signed by its seller')
    const manifest = parseManifest(decodeObject(record.manifest))
    if (!contentIdOf(manifest).equals(offer.body.terms.content)) throw new BadDeviceRequestError('the manifest is not that of the offered content')
    const offerId = signedId(offer)
    const opened: OpenPurchase = { record, offer, offerId: offerId.toString(), manifest, eT: this.exponentOf(offer.body) }
    if (record.licence !== undefined) {
      const licence = parseSignedLicence(decodeObject(record.licence), offer.body.terms)
      if ((await verifyPeerSigned(licence, 'licence')) !== offer.body.terms.seller) throw new BadDeviceRequestError('the licence is not signed by the seller')
      if (!licence.body.offer.equals(offerId)) throw new BadDeviceRequestError('the licence is for another offer')
      opened.licence = licence
    }
    return opened
  }

  /** The offer's price exponent e_T, derived once per terms */
  exponentOf (offer: Offer): bigint {
    const cid = termsCid(offer.terms)
    const key = cid.toString()
    let eT = this.exponents.get(key)
    if (eT === undefined) {
      eT = priceExponent(cid.bytes)
      this.exponents.set(key, eT)
    }
    return eT
  }

  private async read (secrets: DeviceSecrets, id: string): Promise<OpenPurchase> {
    const value = await this.session.store.getRecord(secrets, 'purchase', id)
    if (value === undefined) throw new UnknownPurchaseError()
    return await this.parse(recordOf(value))
  }

  /** Opened records hold blinding factors and unblinded shares: wiped, then dropped */
  private forget (): void {
    this.exponents.clear()
    for (const p of this.openPurchases.values()) {
      for (const share of p.record.shares) {
        share.r.fill(0)
        share.x?.fill(0)
      }
    }
    this.openPurchases.clear()
    this.purchaseInfos.clear()
  }
}

/** A sealed purchase record's fields, each checked */
function recordOf (value: unknown): PurchaseRecord {
  const r = check.expectRecord(value, 'purchase')
  const record: PurchaseRecord = {
    v: 1,
    purchase: check.expectString(r.purchase, 'purchase', 64),
    offer: check.expectBytes(r.offer, 'offer', 1 << 24),
    manifest: check.expectBytes(r.manifest, 'manifest', 1 << 28),
    buyer: check.expectString(r.buyer, 'buyer', 128),
    state: check.expectString(r.state, 'state', 16) as PurchaseState,
    createdAt: check.expectUint(r.createdAt, 'createdAt'),
    shares: check.expectArray(r.shares, 'shares', 64).map(shareOf)
  }
  if (r.licence !== undefined) record.licence = check.expectBytes(r.licence, 'licence', 1 << 20)
  if (r.fault !== undefined) {
    if (!DISPUTE_PARTS.includes(r.fault as DisputePart)) throw new BadDeviceRequestError('sealed record damaged: fault')
    record.fault = r.fault as DisputePart
  }
  return record
}

function shareOf (value: unknown): ShareState {
  const o = check.expectRecord(value, 'share')
  const share: ShareState = { j: check.expectUint(o.j, 'j'), r: check.expectBytes(o.r, 'r', 1024), request: check.expectBytes(o.request, 'request', 1 << 24) }
  if (o.x !== undefined) share.x = check.expectBytes(o.x, 'x', 1024)
  if (o.accepted === true) share.accepted = true
  if (o.faulty === true) share.faulty = true
  return share
}

/** The wrapped shares a purchase rebuilds from: the licence's, or the offer's */
export function sharesOf (p: OpenPurchase): WrappedShareRef[] {
  return p.licence?.body.shares ?? p.offer.body.shares
}

export function acceptedOf (record: PurchaseRecord): ShareState[] {
  return record.shares.filter(s => s.accepted === true)
}

export function infoOf (p: OpenPurchase): PurchaseInfo {
  return {
    purchase: p.record.purchase,
    offer: p.offerId,
    content: p.offer.body.terms.content.toString(),
    state: p.record.state,
    accepted: acceptedOf(p.record).map(s => s.j),
    pending: p.record.shares.filter(s => s.accepted !== true && s.faulty !== true).map(s => s.j),
    faulty: p.record.shares.filter(s => s.faulty === true).map(s => s.j),
    t: p.offer.body.terms.t,
    bound: p.licence != null,
    ...(p.record.fault != null ? { fault: p.record.fault } : {})
  }
}
