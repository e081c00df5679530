// A purchase's steps inside the device: opened for a signed offer, its unblind requests
// signed, each answer checked (a wrong one kept as a fraud proof), K rebuilt and sealed
// as a licence, and a receipt given once the buyer is content.
import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { BlindCheckError, blindWith, checkUnblinded, i2ospMod, os2ip, unblind } from '../crypto/index.ts'
import { BadDeviceRequestError, KeyCommitmentError, PurchaseStateError, WrongDeviceError } from '../errors.ts'
import { cidOfBytes, decodeObject, encodeObject } from '../objects/codec.ts'
import { parseSignedUnblindAnswer } from '../objects/market.ts'
import { signWithDeviceKey, signWithDeviceKeyInPool, signedId, verifyPeerSigned } from '../objects/signed.ts'
import { rebuildKey } from './key-rebuild.ts'
import { sealLicence } from './licence-records.ts'
import { acceptedOf, infoOf, sharesOf } from './purchase-records.ts'
import type { AnswerVerdict, LicenceInfo, PurchaseInfo } from '../interface.ts'
import type { UnblindAnswer, UnblindRequest } from '../objects/market.ts'
import type { Signed } from '../objects/signed.ts'
import type { DeviceSecrets } from '../store/keystore.ts'
import type { Blinding } from './blinding.ts'
import type { OpenPurchase, PurchaseRecord, PurchaseRecords, ShareState } from './purchase-records.ts'
import type { DeviceSession } from './session.ts'

export class Purchases {
  private readonly session: DeviceSession
  private readonly records: PurchaseRecords
  private readonly blinding: Blinding
  private readonly log = logger('keyfair:device:purchases')

  constructor (session: DeviceSession, records: PurchaseRecords, blinding: Blinding) {
    this.session = session
    this.records = records
    this.blinding = blinding
  }

  async beginPurchase (args: { offer: Uint8Array, manifest: Uint8Array, licence?: Uint8Array, buyer: string }): Promise<PurchaseInfo> {
    const secrets = this.session.unlocked()
    await this.session.signingCertificate()
    const now = this.session.now()
    const record: PurchaseRecord = {
      v: 1,
      purchase: randomBytes(16).toString('hex'),
      offer: args.offer,
      manifest: args.manifest,
      buyer: args.buyer,
      state: 'open',
      createdAt: now,
      shares: []
    }
    if (args.licence !== undefined) record.licence = args.licence
    const opened = await this.records.parse(record)
    if (opened.offer.body.terms.expiry <= this.session.now()) throw new PurchaseStateError('the offer has expired')
    if (opened.licence != null && opened.licence.body.device !== secrets.deviceId) throw new WrongDeviceError()
    if (opened.licence == null && opened.offer.body.shares.length === 0) {
      throw new PurchaseStateError('this offer sells device-bound licences only: get a licence from the seller')
    }
    await this.records.save(secrets, opened)
    this.log('opened purchase %s of %s', record.purchase, opened.manifest.size)
    return infoOf(opened)
  }

  async requestShares (args: { purchase: string, js: number[] }): Promise<{ requests: Uint8Array[] }> {
    const secrets = this.session.unlocked()
    const p = await this.openOf(args.purchase)
    checkShareIndices(p, args.js)
    const requests: Array<Uint8Array | Promise<Uint8Array>> = []
    const made: ShareState[] = []
    for (const j of args.js) {
      const existing = p.record.shares.find(s => s.j === j)
      if (existing != null) {
        requests.push(existing.request)
        continue
      }
      const { share, request } = await this.makeRequest(secrets, p, j)
      made.push(share)
      requests.push(request)
    }
    const signed = await Promise.all(requests)
    if (made.length > 0) {
      p.record.shares.push(...made)
      // every r is sealed to disk (one write for all) before a request leaves: a crash cannot orphan a paid share
      await this.records.save(secrets, p)
    }
    return { requests: signed }
  }

  async acceptAnswer (args: { purchase: string, j: number, answer: Uint8Array }): Promise<AnswerVerdict> {
    const secrets = this.session.unlocked()
    const p = await this.openOf(args.purchase)
    const share = p.record.shares.find(s => s.j === args.j)
    if (share == null) throw new PurchaseStateError(`no request was made for share ${args.j}`)
    if (share.faulty === true) throw new PurchaseStateError(`escrow ${args.j} already answered wrongly`)
    const answer = await this.checkedAnswer(p, share, args.answer)
    if (share.accepted === true) return { accepted: true, have: acceptedOf(p.record).length, need: p.offer.body.terms.t }
    const x = this.unblindChecked(p, share, answer)
    if (x == null) return await this.keepFraud(secrets, p, share, answer)
    share.x = x
    share.accepted = true
    p.unsaved = true
    this.records.cache(p)
    return { accepted: true, have: acceptedOf(p.record).length, need: p.offer.body.terms.t }
  }

  async completePurchase (args: { purchase: string }): Promise<LicenceInfo> {
    const secrets = this.session.unlocked()
    const p = await this.openOf(args.purchase)
    const { t } = p.offer.body.terms
    const accepted = acceptedOf(p.record)
    if (accepted.length < t) throw new PurchaseStateError(`have ${accepted.length} of ${t} checked shares`)
    const rebuilt = rebuildKey(secrets, p)
    const { key } = rebuilt
    if (key == null) {
      // which part failed decides what a dispute opens (and so what it discloses)
      if (rebuilt.fault != null) p.record.fault = rebuilt.fault
      await this.records.fail(secrets, p)
      throw new KeyCommitmentError(`${rebuilt.failure ?? 'the key does not match its commitment'}: dispute the purchase`)
    }
    try {
      const info = licenceInfoOf(p, this.session.now())
      const escrows = p.offer.body.terms.escrows.map(e => e.peer)
      await sealLicence(this.session.store, secrets, { ...info, escrows, key })
      p.record.state = 'complete'
      // the blinding factors of checked shares are no longer needed
      for (const share of acceptedOf(p.record)) wipeFactor(share)
      await this.records.save(secrets, p)
      this.log('purchase %s complete', p.record.purchase)
      return info
    } finally {
      key.fill(0)
    }
  }

  async receipt (args: { purchase: string }): Promise<{ receipt: Uint8Array }> {
    const secrets = this.session.unlocked()
    const p = await this.records.load(args.purchase)
    if (p.record.state !== 'complete' && p.record.state !== 'confirmed') throw new PurchaseStateError(`purchase is ${p.record.state}: only a complete purchase is confirmed`)
    const receipt = signWithDeviceKey('receipt', { v: 1, purchase: p.record.purchase, offer: signedId(p.offer), at: this.session.now() },
      secrets.signingKey, await this.session.signingCertificate())
    if (p.record.state === 'complete') {
      // confirmed: the openings are no longer needed for a dispute
      p.record.state = 'confirmed'
      for (const s of p.record.shares) {
        s.x?.fill(0)
        delete s.x
        wipeFactor(s)
      }
      await this.records.save(secrets, p)
    }
    return { receipt: encodeObject(receipt) }
  }

  /** An open purchase by id (PurchaseStateError for any other) */
  private async openOf (id: string): Promise<OpenPurchase> {
    const p = await this.records.load(id)
    if (p.record.state !== 'open') throw new PurchaseStateError(`purchase is ${p.record.state}`)
    return p
  }

  /** Blinds share j's c_j and signs the request; the share's r_j is kept with it */
  private async makeRequest (secrets: DeviceSecrets, p: OpenPurchase, j: number): Promise<{ share: ShareState, request: Promise<Uint8Array> }> {
    const n = os2ip(p.offer.body.terms.escrows[j - 1]!.n)
    const c = os2ip(sharesOf(p)[j - 1]!.c)
    const factor = this.blinding.factorFor(p.offerId, j, n, p.eT)
    const body: UnblindRequest = {
      v: 1,
      purchase: p.record.purchase,
      offer: p.offer,
      j,
      b: i2ospMod(blindWith(c, factor, n), n),
      amount: p.offer.body.terms.price,
      buyer: p.record.buyer,
      at: this.session.now()
    }
    // signed side by side on the thread pool: each RSA-PSS signature is ~2 ms at 3072 bits
    const signing = signWithDeviceKeyInPool('unblind-request', body, secrets.signingKey, await this.session.signingCertificate())
    const share: ShareState = { j, r: i2ospMod(factor.r, n), request: new Uint8Array(0) }
    this.blinding.remember(share, factor)
    return { share, request: signing.then(signed => { share.request = encodeObject(signed); return share.request }) }
  }

  /** The answer, signed by share j's escrow and for the request this device sent */
  private async checkedAnswer (p: OpenPurchase, share: ShareState, bytes: Uint8Array): Promise<Signed<UnblindAnswer>> {
    const escrow = p.offer.body.terms.escrows[share.j - 1]!
    const answer = parseSignedUnblindAnswer(decodeObject(bytes))
    const signer = await verifyPeerSigned(answer, 'unblind-answer')
    if (signer !== escrow.peer) throw new BadDeviceRequestError(`answer is not signed by escrow ${share.j}`)
    // the CID of the request is that of the bytes sent (the encoding is deterministic)
    if (!answer.body.request.equals(cidOfBytes(share.request)) || answer.body.purchase !== p.record.purchase || answer.body.j !== share.j) {
      throw new BadDeviceRequestError('answer is for another request')
    }
    return answer
  }

  /** x_j unblinded from the answer and checked (x^e_T == c), or undefined for a wrong answer */
  private unblindChecked (p: OpenPurchase, share: ShareState, answer: Signed<UnblindAnswer>): Uint8Array | undefined {
    const n = os2ip(p.offer.body.terms.escrows[share.j - 1]!.n)
    const z = os2ip(answer.body.z)
    const c = os2ip(sharesOf(p)[share.j - 1]!.c)
    try {
      if (z >= n) throw new BlindCheckError()
      const x = unblind(z, os2ip(share.r), n, this.blinding.inverseOf(share))
      this.blinding.dropInverse(share)
      checkUnblinded(x, c, p.eT, n, this.blinding.publicKeyOf(n, p.eT))
      return i2ospMod(x, n)
    } catch (err) {
      if (!(err instanceof BlindCheckError)) throw err
      return undefined
    }
  }

  /** A signed wrong answer: kept as a fraud proof against that escrow */
  private async keepFraud (secrets: DeviceSecrets, p: OpenPurchase, share: ShareState, answer: Signed<UnblindAnswer>): Promise<AnswerVerdict> {
    share.faulty = true
    await this.records.save(secrets, p)
    this.log('escrow %d of purchase %s answered wrongly', share.j, p.record.purchase)
    const fraud = signWithDeviceKey('dispute', {
      v: 1,
      purchase: p.record.purchase,
      offer: signedId(p.offer),
      reason: 'fraud',
      openings: [],
      fraud: { request: decodeObject(share.request), answer },
      at: this.session.now()
    }, secrets.signingKey, await this.session.signingCertificate())
    return { accepted: false, fraud: encodeObject(fraud) }
  }
}

/** Throws unless each index names an escrow of the offer, once, that has not answered wrongly */
function checkShareIndices (p: OpenPurchase, js: number[]): void {
  if (new Set(js).size !== js.length) throw new BadDeviceRequestError('a share is asked for twice')
  for (const j of js) {
    if (!Number.isInteger(j) || p.offer.body.terms.escrows[j - 1] == null) throw new BadDeviceRequestError(`the offer has no escrow ${j}`)
    if (p.record.shares.find(s => s.j === j)?.faulty === true) throw new PurchaseStateError(`escrow ${j} answered wrongly: use another escrow`)
  }
}

function licenceInfoOf (p: OpenPurchase, now: number): LicenceInfo {
  return {
    content: p.offer.body.terms.content.toString(),
    offer: p.offerId,
    purchase: p.record.purchase,
    title: p.offer.body.title,
    purchasedAt: now,
    licenceTtl: p.offer.body.licenceTtl,
    playUntil: now + p.offer.body.licenceTtl
  }
}

function wipeFactor (share: ShareState): void {
  share.r.fill(0)
  share.r = new Uint8Array(0)
}
