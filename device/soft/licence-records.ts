// The device's sealed licences: K and what playing and renewing it need, one record per
// content. K is read only to be used inside the device and wiped by the reader.
import { NoLicenceError } from '../errors.ts'
import { LIMITS, parseLicenceTtl } from '../objects/market.ts'
import { check } from './purchase-records.ts'
import type { LicenceInfo } from '../interface.ts'
import type { DeviceSecrets, KeyStore } from '../store/keystore.ts'

/** A sealed licence: K, and what playing and renewing it need */
export interface LicenceRecord extends LicenceInfo {
  key: Uint8Array
  /** the escrows of the offer (peer ids): the ones whose statement renews it */
  escrows: string[]
}

/** Seals a licence under its content id, replacing any earlier one */
export async function sealLicence (store: KeyStore, secrets: DeviceSecrets, licence: LicenceRecord): Promise<void> {
  await store.putRecord(secrets, 'licence', licence.content, { v: 1, ...licence })
}

/** The sealed licence of a content; throws NoLicenceError when there is none */
export async function readLicence (store: KeyStore, secrets: DeviceSecrets, content: string): Promise<LicenceRecord> {
  const record = await store.getRecord(secrets, 'licence', content)
  if (record === undefined) throw new NoLicenceError()
  const r = check.expectRecord(record, 'licence')
  const out: LicenceRecord = {
    content: check.expectString(r.content, 'content', 200),
    offer: check.expectString(r.offer, 'offer', 200),
    purchase: check.expectString(r.purchase, 'purchase', 64),
    title: check.expectString(r.title, 'title', 256),
    purchasedAt: check.expectUint(r.purchasedAt, 'purchasedAt'),
    licenceTtl: parseLicenceTtl(r.licenceTtl, 'licenceTtl'),
    playUntil: check.expectUint(r.playUntil, 'playUntil'),
    escrows: check.expectArray(r.escrows, 'escrows', LIMITS.maxEscrows).map((e, i) => check.expectString(e, `escrows[${i}]`, LIMITS.maxPeerId)),
    key: check.expectBytes(r.key, 'key', 32, 32)
  }
  if (r.renewedAt !== undefined) out.renewedAt = check.expectUint(r.renewedAt, 'renewedAt')
  return out
}

/** What the interface shows of a licence: everything but K and its escrows */
export function publicInfoOf (licence: LicenceRecord): LicenceInfo {
  const { key: _key, escrows: _escrows, ...info } = licence
  return info
}
