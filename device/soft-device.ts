// The software sealed device (docs/protocol.md, Sealed device): the patent's tamper-resistant module as a
// component behind the SealedDevice interface. It runs inside the device process;
// its secrets live in that process's memory and, sealed, in its key store.
import { X509Certificate, createPublicKey, randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { CID } from 'multiformats/cid'
import {
  BlindCheckError, ChunkAuthError, ChunkHashError, blindWith, blindingFactor, bytesEqual, checkUnblinded, combineDeviceBound, combineShares,
  i2ospMod, isDeviceWrapCiphertext, openDeviceWrap, openOfferDeviceKey, openVerifiedChunk, os2ip, priceExponent, rawPublicKey,
  unblind, unwrapDeviceKey, unwrapShare, verifyChunk, verifyDevicePartCommitment, verifyEscrowPartCommitment, verifyKeyCommitment
} from './crypto/index.ts'
import { ChunkFeed } from './chunk-feed.ts'
import { decryptFile } from './content-file.ts'
import {
  BadDeviceRequestError, BadRenewalError, ChunkDecryptsError, DeviceLockedError, DeviceNotInitialisedError, CertificateMismatchError, KeyCommitmentError,
  LicenceExpiredError, NoLicenceError, NotEnrolledError, PlayBusyError, PurchaseStateError, UnknownPurchaseError, WrongDeviceError
} from './errors.ts'
import { cidOfBytes, decodeObject, encodeObject } from './objects/codec.ts'
import { DISPUTE_PARTS, LIMITS, contentIdOf, parseLicenceTtl, parseManifest, parseSignedLicence, parseSignedOffer, parseSignedRenewal, parseSignedUnblindAnswer, termsCid } from './objects/market.ts'
import { signWithDeviceKey, signWithDeviceKeyInPool, signedId, verifyPeerSigned } from './objects/signed.ts'
import { createShapeChecks } from './objects/validate.ts'
import { createCsr } from './pki/csr.ts'
import { DEVICE_UNIT } from './pki/names.ts'
import { KeyStore } from './store/keystore.ts'
import type {
  AnswerVerdict, CertificateRequests, DeviceCertificates, DeviceStatus, LicenceInfo, PlayProgress,
  PurchaseInfo, PurchaseState, RenewalRequestInfo, SealedDevice
} from './interface.ts'
import type { BlindingFactor, ContentManifest, RawPublicKey } from './crypto/index.ts'
import type { DeviceWrapOpening, DisputePart, Licence, Offer, Opening, UnblindRequest, WrappedShareRef } from './objects/market.ts'
import type { Signed } from './objects/signed.ts'
import type { DeviceSecrets, KdfParams } from './store/keystore.ts'
import type { KeyObject } from 'node:crypto'

const CERT_FILES = { signing: 'signing.crt', encryption: 'encryption.crt', root: 'root.crt' } as const
const check = createShapeChecks(message => new BadDeviceRequestError(`sealed record damaged: ${message}`))

interface ShareState {
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

interface PurchaseRecord {
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

/** K rebuilt and checked, or why not (and, for a licence, which part is at fault) */
interface RebuiltKey {
  key?: Uint8Array
  fault?: DisputePart
  failure?: string
}

/** A purchase record with its public objects parsed */
interface OpenPurchase {
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

/** A sealed licence: K, and what playing and renewing it need */
interface LicenceRecord extends LicenceInfo {
  key: Uint8Array
  /** the escrows of the offer (peer ids): the ones whose statement renews it */
  escrows: string[]
}

/** A renewal request out, waiting for an escrow's statement (memory only: a lock drops it) */
interface PendingRenewal {
  request: string
  nonce: Uint8Array
}

export interface SoftDeviceInit {
  store: KeyStore
  /** clock for request and receipt timestamps; tests may move it */
  now?: () => number
}

/** purchases kept opened in memory at once (a purchase takes a few of its steps in a row) */
const MAX_OPEN_PURCHASES = 16
/** blinding factors drawn ahead of requests, at most (a few purchases' worth) */
const MAX_PREPARED_FACTORS = 64
/** imported (n_j, e_T) keys kept, at most */
const MAX_PUBLIC_KEYS = 64

export class SoftDevice implements SealedDevice {
  private readonly store: KeyStore
  private readonly now: () => number
  private readonly log = logger('keyfair:device')
  private secrets?: DeviceSecrets
  private readonly exponents = new Map<string, bigint>()
  /** purchases opened this session, by id: the device is the only writer of its records */
  private readonly openPurchases = new Map<string, OpenPurchase>()
  /** what `purchases` lists, kept for every record read or written this session */
  private readonly purchaseInfos = new Map<string, PurchaseInfo>()
  /** plays following a download still under way, by content */
  private readonly feeds = new Map<string, ChunkFeed>()
  /** r_j^-1 of shares whose requests are out, drawn with r_j */
  private blindingInverses = new WeakMap<ShareState, bigint>()
  /** blinding factors drawn before a purchase asks, by offer id and share index; each blinds one request */
  private readonly preparedFactors = new Map<string, BlindingFactor>()
  /** the (n_j, e_T) keys of recent purchases, imported for OpenSSL once (null: BigInt only) */
  private readonly publicKeys = new Map<string, RawPublicKey | null>()
  /** the signing certificate's DER, read once per unlock (every request carries it) */
  private signingCertificateDer?: Uint8Array
  /** renewal requests out, by content id */
  private readonly renewals = new Map<string, PendingRenewal>()

  constructor (init: SoftDeviceInit) {
    this.store = init.store
    this.now = init.now ?? Date.now
  }

  async status (): Promise<DeviceStatus> {
    const initialised = await this.store.exists()
    const status: DeviceStatus = { initialised, unlocked: this.secrets != null, enrolled: false }
    if (!initialised) return status
    status.deviceId = await this.store.deviceId()
    status.enrolled = (await this.store.readPublic(CERT_FILES.signing)) != null
    return status
  }

  async initialise (args: { passphrase: string, bits?: number, kdf?: KdfParams }): Promise<{ deviceId: string }> {
    const passphrase = Buffer.from(args.passphrase, 'utf8')
    try {
      const secrets = await this.store.create(passphrase, { bits: args.bits, kdf: args.kdf })
      this.forget()
      this.secrets = secrets
    } finally {
      passphrase.fill(0)
    }
    this.log('initialised device %s', this.secrets.deviceId)
    return { deviceId: this.secrets.deviceId }
  }

  async unlock (args: { passphrase: string }): Promise<{ deviceId: string }> {
    const passphrase = Buffer.from(args.passphrase, 'utf8')
    try {
      const secrets = await this.store.open(passphrase)
      this.forget()
      this.secrets = secrets
    } finally {
      passphrase.fill(0)
    }
    this.log('unlocked device %s', this.secrets.deviceId)
    return { deviceId: this.secrets.deviceId }
  }

  async lock (): Promise<void> {
    this.forget()
  }

  async certificateRequests (): Promise<CertificateRequests> {
    const secrets = this.unlocked()
    const subject = { commonName: secrets.deviceId, organizationalUnit: DEVICE_UNIT }
    return {
      deviceId: secrets.deviceId,
      signing: createCsr(secrets.signingKey, createPublicKey(secrets.signingKey), subject),
      encryption: createCsr(secrets.encryptionKey, createPublicKey(secrets.encryptionKey), subject)
    }
  }

  async installCertificates (certificates: DeviceCertificates): Promise<void> {
    const secrets = this.unlocked()
    const root = parseCertificate(certificates.root, 'root')
    const pairs: Array<[X509Certificate, KeyObject, string]> = [
      [parseCertificate(certificates.signing, 'signing'), secrets.signingKey, 'signing'],
      [parseCertificate(certificates.encryption, 'encryption'), secrets.encryptionKey, 'encryption']
    ]
    for (const [cert, key, what] of pairs) {
      const own = createPublicKey(key).export({ type: 'spki', format: 'der' })
      if (!own.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
        throw new CertificateMismatchError(`the ${what} certificate is not for this device's ${what} key`)
      }
      if (!cert.checkIssued(root) || !cert.verify(root.publicKey)) {
        throw new CertificateMismatchError(`the ${what} certificate is not issued by the given root`)
      }
    }
    await this.store.writePublic(CERT_FILES.root, root.toString())
    await this.store.writePublic(CERT_FILES.encryption, pairs[1]![0].toString())
    await this.store.writePublic(CERT_FILES.signing, pairs[0]![0].toString())
    this.signingCertificateDer = undefined
    this.log('installed certificates for device %s', secrets.deviceId)
  }

  async certificates (): Promise<DeviceCertificates> {
    if (!(await this.store.exists())) throw new DeviceNotInitialisedError()
    const [signing, encryption, root] = await Promise.all([
      this.store.readPublic(CERT_FILES.signing),
      this.store.readPublic(CERT_FILES.encryption),
      this.store.readPublic(CERT_FILES.root)
    ])
    if (signing == null || encryption == null || root == null) throw new NotEnrolledError()
    return { signing, encryption, root }
  }

  async beginPurchase (args: { offer: Uint8Array, manifest: Uint8Array, licence?: Uint8Array, buyer: string }): Promise<PurchaseInfo> {
    const secrets = this.unlocked()
    await this.signingCertificate()
    const record: PurchaseRecord = {
      v: 1,
      purchase: randomBytes(16).toString('hex'),
      offer: args.offer,
      manifest: args.manifest,
      buyer: args.buyer,
      state: 'open',
      createdAt: this.now(),
      shares: []
    }
    if (args.licence !== undefined) record.licence = args.licence
    const opened = await this.parsePurchase(record)
    if (opened.offer.body.terms.expiry <= this.now()) throw new PurchaseStateError('the offer has expired')
    if (opened.licence != null && opened.licence.body.device !== secrets.deviceId) throw new WrongDeviceError()
    if (opened.licence == null && opened.offer.body.shares.length === 0) {
      throw new PurchaseStateError('this offer sells device-bound licences only: get a licence from the seller')
    }
    await this.savePurchase(secrets, opened)
    this.log('opened purchase %s of %s', record.purchase, opened.manifest.size)
    return infoOf(opened)
  }

  async requestShare (args: { purchase: string, j: number }): Promise<{ request: Uint8Array }> {
    const { requests } = await this.requestShares({ purchase: args.purchase, js: [args.j] })
    return { request: requests[0]! }
  }

  async requestShares (args: { purchase: string, js: number[] }): Promise<{ requests: Uint8Array[] }> {
    const secrets = this.unlocked()
    const p = await this.loadPurchase(args.purchase)
    if (p.record.state !== 'open') throw new PurchaseStateError(`purchase is ${p.record.state}`)
    if (new Set(args.js).size !== args.js.length) throw new BadDeviceRequestError('a share is asked for twice')
    for (const j of args.js) {
      if (!Number.isInteger(j) || p.offer.body.terms.escrows[j - 1] == null) throw new BadDeviceRequestError(`the offer has no escrow ${j}`)
      if (p.record.shares.find(s => s.j === j)?.faulty === true) throw new PurchaseStateError(`escrow ${j} answered wrongly: use another escrow`)
    }
    const requests: Array<Uint8Array | Promise<Uint8Array>> = []
    const made: ShareState[] = []
    for (const j of args.js) {
      const existing = p.record.shares.find(s => s.j === j)
      if (existing != null) {
        requests.push(existing.request)
        continue
      }
      const escrow = p.offer.body.terms.escrows[j - 1]!
      const n = os2ip(escrow.n)
      const c = os2ip(sharesOf(p)[j - 1]!.c)
      const factor = this.takePreparedFactor(p.offerId, j, n, p.eT) ?? blindingFactor(p.eT, n, undefined, this.publicKeyOf(n, p.eT))
      const b = blindWith(c, factor, n)
      const body: UnblindRequest = {
        v: 1,
        purchase: p.record.purchase,
        offer: p.offer,
        j,
        b: i2ospMod(b, n),
        amount: p.offer.body.terms.price,
        buyer: p.record.buyer,
        at: this.now()
      }
      // signed side by side on the thread pool: each RSA-PSS signature is ~2 ms at 3072 bits
      const signing = signWithDeviceKeyInPool('unblind-request', body, secrets.signingKey, await this.signingCertificate())
      const share: ShareState = { j, r: i2ospMod(factor.r, n), request: new Uint8Array(0) }
      this.blindingInverses.set(share, factor.rInv)
      made.push(share)
      requests.push(signing.then(signed => { share.request = encodeObject(signed); return share.request }))
    }
    const signed = await Promise.all(requests)
    if (made.length > 0) {
      p.record.shares.push(...made)
      // every r is sealed to disk (one write for all) before a request leaves: a crash cannot orphan a paid share
      await this.savePurchase(secrets, p)
    }
    return { requests: signed }
  }

  /**
   * Draws the blinding factors of an offer's first t shares (the escrows a purchase asks
   * first) ahead of the purchase, one per turn of the event loop so that other calls are
   * answered in between: the device does this work while the node fetches the licence,
   * not while the escrows wait for requests. Nothing is sealed: a factor that is lost was
   * never used.
   */
  async prepareShares (args: { offer: Uint8Array }): Promise<{ preparing: number }> {
    this.unlocked()
    const offer = parseSignedOffer(decodeObject(args.offer))
    const offerId = signedId(offer).toString()
    const { terms } = offer.body
    const js = Array.from({ length: Math.min(terms.t, terms.escrows.length) }, (_, i) => i + 1)
      .filter(j => !this.preparedFactors.has(`${offerId}/${j}`))
    const draw = (i: number): void => {
      const j = js[i]
      if (j == null || this.secrets == null) return
      try {
        const eT = this.exponentOf(offer.body)
        const n = os2ip(terms.escrows[j - 1]!.n)
        const id = `${offerId}/${j}`
        if (!this.preparedFactors.has(id)) {
          const factor = blindingFactor(eT, n, undefined, this.publicKeyOf(n, eT))
          if (this.preparedFactors.size >= MAX_PREPARED_FACTORS) this.preparedFactors.delete(this.preparedFactors.keys().next().value!)
          this.preparedFactors.set(id, factor)
        }
      } catch (err: any) {
        // a request draws its own factor, and reports what is wrong with the offer
        this.log('no blinding factor for share %d of %s: %s', j, offerId, err.code ?? err.message)
        return
      }
      setImmediate(draw, i + 1)
    }
    setImmediate(draw, 0)
    return { preparing: js.length }
  }

  /** A factor drawn ahead for this share of this offer, if any: removed, so it blinds one request only */
  private takePreparedFactor (offerId: string, j: number, n: bigint, eT: bigint): BlindingFactor | undefined {
    const id = `${offerId}/${j}`
    const factor = this.preparedFactors.get(id)
    if (factor == null) return undefined
    this.preparedFactors.delete(id)
    return factor.n === n && factor.eT === eT ? factor : undefined
  }

  async acceptAnswer (args: { purchase: string, j: number, answer: Uint8Array }): Promise<AnswerVerdict> {
    const secrets = this.unlocked()
    const p = await this.loadPurchase(args.purchase)
    if (p.record.state !== 'open') throw new PurchaseStateError(`purchase is ${p.record.state}`)
    const share = p.record.shares.find(s => s.j === args.j)
    if (share == null) throw new PurchaseStateError(`no request was made for share ${args.j}`)
    if (share.faulty === true) throw new PurchaseStateError(`escrow ${args.j} already answered wrongly`)
    const escrow = p.offer.body.terms.escrows[args.j - 1]!
    const answer = parseSignedUnblindAnswer(decodeObject(args.answer))
    const signer = await verifyPeerSigned(answer, 'unblind-answer')
    if (signer !== escrow.peer) throw new BadDeviceRequestError(`answer is not signed by escrow ${args.j}`)
    // the CID of the request is that of the bytes sent (the encoding is deterministic)
    if (!answer.body.request.equals(cidOfBytes(share.request)) || answer.body.purchase !== p.record.purchase || answer.body.j !== args.j) {
      throw new BadDeviceRequestError('answer is for another request')
    }
    if (share.accepted === true) return { accepted: true, have: acceptedOf(p.record).length, need: p.offer.body.terms.t }

    const n = os2ip(escrow.n)
    const z = os2ip(answer.body.z)
    const c = os2ip(sharesOf(p)[args.j - 1]!.c)
    let x: bigint | undefined
    try {
      if (z >= n) throw new BlindCheckError()
      x = unblind(z, os2ip(share.r), n, this.blindingInverses.get(share))
      this.blindingInverses.delete(share)
      checkUnblinded(x, c, p.eT, n, this.publicKeyOf(n, p.eT))
    } catch (err) {
      if (!(err instanceof BlindCheckError)) throw err
      // a signed wrong answer: keep it as a fraud proof against that escrow
      share.faulty = true
      await this.savePurchase(secrets, p)
      this.log('escrow %d of purchase %s answered wrongly', args.j, p.record.purchase)
      const fraud = signWithDeviceKey('dispute', {
        v: 1,
        purchase: p.record.purchase,
        offer: signedId(p.offer),
        reason: 'fraud',
        openings: [],
        fraud: { request: decodeObject(share.request), answer },
        at: this.now()
      }, secrets.signingKey, await this.signingCertificate())
      return { accepted: false, fraud: encodeObject(fraud) }
    }
    share.x = i2ospMod(x, n)
    share.accepted = true
    p.unsaved = true
    this.cachePurchase(p)
    return { accepted: true, have: acceptedOf(p.record).length, need: p.offer.body.terms.t }
  }

  async completePurchase (args: { purchase: string }): Promise<LicenceInfo> {
    const secrets = this.unlocked()
    const p = await this.loadPurchase(args.purchase)
    if (p.record.state !== 'open') throw new PurchaseStateError(`purchase is ${p.record.state}`)
    const { t } = p.offer.body.terms
    const accepted = acceptedOf(p.record)
    if (accepted.length < t) throw new PurchaseStateError(`have ${accepted.length} of ${t} checked shares`)
    const rebuilt = this.rebuildKey(secrets, p)
    const { key } = rebuilt
    if (key == null) {
      // which part failed decides what a dispute opens (and so what it discloses)
      if (rebuilt.fault != null) p.record.fault = rebuilt.fault
      await this.fail(secrets, p)
      throw new KeyCommitmentError(`${rebuilt.failure ?? 'the key does not match its commitment'}: dispute the purchase`)
    }
    try {
      const now = this.now()
      const info: LicenceInfo = {
        content: p.offer.body.terms.content.toString(),
        offer: p.offerId,
        purchase: p.record.purchase,
        title: p.offer.body.title,
        purchasedAt: now,
        licenceTtl: p.offer.body.licenceTtl,
        playUntil: now + p.offer.body.licenceTtl
      }
      const escrows = p.offer.body.terms.escrows.map(e => e.peer)
      await this.store.putRecord(secrets, 'licence', info.content, { v: 1, ...info, escrows, key })
      p.record.state = 'complete'
      // the blinding factors of checked shares are no longer needed
      for (const share of acceptedOf(p.record)) {
        share.r.fill(0)
        share.r = new Uint8Array(0)
      }
      await this.savePurchase(secrets, p)
      this.log('purchase %s complete', p.record.purchase)
      return info
    } finally {
      key.fill(0)
    }
  }

  /**
   * Rebuilds K from the purchase's checked shares and its licence, checking each part of
   * a licence against its own commitment (kcEsc, kcDev) and K against the offer's kc.
   * Returns K (the caller wipes it) or the part at fault.
   */
  private rebuildKey (secrets: DeviceSecrets, p: OpenPurchase): RebuiltKey {
    const { t } = p.offer.body.terms
    const wrapped = sharesOf(p)
    const offerSalt = p.licence?.body.salt ?? p.offer.body.salt
    const shares: Uint8Array[] = []
    let kEsc: Uint8Array | undefined
    let kDev: Uint8Array | undefined
    try {
      let escrowFailure: string | undefined
      try {
        for (const s of acceptedOf(p.record).slice(0, t)) {
          const n = os2ip(p.offer.body.terms.escrows[s.j - 1]!.n)
          shares.push(unwrapShare({ x: os2ip(s.x!), n, j: s.j, dem: wrapped[s.j - 1]!.dem, contentSalt: p.manifest.salt, offerSalt }))
        }
        kEsc = combineShares(shares, t)
      } catch (err: any) {
        escrowFailure = `the checked shares do not rebuild the key (${String(err.code ?? err.name)})`
      }
      const licence = p.licence?.body
      if (licence == null) {
        if (kEsc == null) return { failure: escrowFailure }
        const key = combineDeviceBound(kEsc, openOfferDeviceKey())
        if (verifyKeyCommitment(key, p.offer.body.kc)) return { key }
        key.fill(0)
        return { failure: 'the key does not match the offer\'s commitment' }
      }
      if (kEsc != null && !verifyEscrowPartCommitment(kEsc, licence.kcEsc)) escrowFailure = 'the shares\' part of the key does not match the licence\'s commitment'
      if (escrowFailure != null || kEsc == null) return { fault: 'escrow', failure: escrowFailure }
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
      for (const share of shares) share.fill(0)
      kEsc?.fill(0)
      kDev?.fill(0)
    }
  }

  async receipt (args: { purchase: string }): Promise<{ receipt: Uint8Array }> {
    const secrets = this.unlocked()
    const p = await this.loadPurchase(args.purchase)
    if (p.record.state !== 'complete' && p.record.state !== 'confirmed') throw new PurchaseStateError(`purchase is ${p.record.state}: only a complete purchase is confirmed`)
    const receipt = signWithDeviceKey('receipt', { v: 1, purchase: p.record.purchase, offer: signedId(p.offer), at: this.now() },
      secrets.signingKey, await this.signingCertificate())
    if (p.record.state === 'complete') {
      // confirmed: the openings are no longer needed for a dispute
      p.record.state = 'confirmed'
      for (const s of p.record.shares) {
        s.x?.fill(0)
        delete s.x
        s.r.fill(0)
        s.r = new Uint8Array(0)
      }
      await this.savePurchase(secrets, p)
    }
    return { receipt: encodeObject(receipt) }
  }

  async dispute (args: { purchase: string, reason: 'key' | 'chunk', chunk?: { index: number, data: Uint8Array } }): Promise<{ dispute: Uint8Array }> {
    const secrets = this.unlocked()
    const p = await this.loadPurchase(args.purchase)
    // a key dispute over a good purchase is the buyer's to make: it is refused, and over a
    // licence it opens only K_esc, so it discloses nothing of K
    const allowed: PurchaseState[] = args.reason === 'key' ? ['failed', 'complete', 'disputed'] : ['complete', 'disputed']
    if (!allowed.includes(p.record.state)) throw new PurchaseStateError(`a ${args.reason} dispute needs a ${allowed.slice(0, -1).join(' or ')} purchase; this one is ${p.record.state}`)
    if (acceptedOf(p.record).length < p.offer.body.terms.t) throw new PurchaseStateError('the purchase holds too few checked shares to dispute')
    const body: Record<string, unknown> = {
      v: 1,
      purchase: p.record.purchase,
      offer: signedId(p.offer),
      reason: args.reason,
      openings: [],
      manifest: p.manifest,
      at: this.now()
    }
    if (p.licence != null) body.licence = p.licence
    const openings = (): Opening[] => acceptedOf(p.record).map(s => ({ j: s.j, x: s.x! }))
    let kDev: Uint8Array | undefined
    try {
      if (args.reason === 'chunk') {
        if (args.chunk == null) throw new BadDeviceRequestError('a chunk dispute needs the chunk')
        // the escrows decrypt the chunk, so this discloses K: only for a chunk that is the
        // manifest's and fails under the key
        this.checkDisputedChunk(secrets, p, args.chunk)
        body.openings = openings()
        if (p.licence != null) body.kDev = kDev = unwrapDeviceKey(p.licence.body.kDev, secrets.encryptionKey)
        body.chunk = args.chunk
      } else if (p.licence == null) {
        body.openings = openings()
      } else {
        const part: DisputePart = p.record.fault ?? 'escrow'
        body.part = part
        if (part !== 'device') body.openings = openings()
        if (part === 'both') body.kDev = kDev = unwrapDeviceKey(p.licence.body.kDev, secrets.encryptionKey)
        if (part === 'device') body.kDevWrap = await this.deviceWrapOpening(secrets, p.licence.body.kDev)
      }
      const dispute = encodeObject(signWithDeviceKey('dispute', body, secrets.signingKey, await this.signingCertificate()))
      if (p.record.state !== 'disputed') {
        p.record.state = 'disputed'
        await this.savePurchase(secrets, p)
        // a disputed purchase is refunded, so its licence goes
        await this.store.deleteRecord('licence', p.offer.body.terms.content.toString())
      }
      return { dispute }
    } finally {
      kDev?.fill(0)
    }
  }

  /** Throws unless the chunk is the manifest's and fails to decrypt under the purchase's key */
  private checkDisputedChunk (secrets: DeviceSecrets, p: OpenPurchase, chunk: { index: number, data: Uint8Array }): void {
    if (!verifyChunk(p.manifest, chunk.index, chunk.data)) {
      throw new ChunkHashError(`chunk ${chunk.index} is not the manifest's: a provider's fault, not the seller's (fetch it again)`)
    }
    const { key, failure } = this.rebuildKey(secrets, p)
    if (key == null) throw new KeyCommitmentError(`${failure ?? 'the key does not match its commitment'}: dispute the key, not a chunk`)
    try {
      openVerifiedChunk(p.manifest, key, chunk.index, chunk.data).fill(0)
    } catch (err) {
      if (err instanceof ChunkAuthError) return
      throw err
    } finally {
      key.fill(0)
    }
    throw new ChunkDecryptsError(`chunk ${chunk.index} decrypts under the purchased key: there is nothing to dispute`)
  }

  /** What the licence's K_dev wrap decrypts to, as the raw RSA value (never the key that decrypts it) */
  private async deviceWrapOpening (secrets: DeviceSecrets, w: Uint8Array): Promise<DeviceWrapOpening> {
    const certificate = await this.store.readPublic(CERT_FILES.encryption)
    if (certificate == null) throw new NotEnrolledError()
    const opening: DeviceWrapOpening = { certificate }
    // a wrap that is no ciphertext for this key is shown to be so by the certificate alone
    if (isDeviceWrapCiphertext(w, createPublicKey(secrets.encryptionKey))) opening.m = openDeviceWrap(w, secrets.encryptionKey)
    return opening
  }

  async purchase (args: { purchase: string }): Promise<PurchaseInfo> {
    this.unlocked()
    return this.purchaseInfos.get(args.purchase) ?? infoOf(await this.loadPurchase(args.purchase))
  }

  async purchases (args: { offer?: string } = {}): Promise<PurchaseInfo[]> {
    this.unlocked()
    const out: PurchaseInfo[] = []
    for (const id of await this.store.listRecords('purchase')) {
      try {
        const info = this.purchaseInfos.get(id) ?? infoOf(await this.loadPurchase(id))
        if (args.offer === undefined || info.offer === args.offer) out.push(info)
      } catch (err: any) {
        this.log.error('skipping purchase record %s: %s', id, err.code ?? err.name)
      }
    }
    return out
  }

  async library (): Promise<LicenceInfo[]> {
    const secrets = this.unlocked()
    const out: LicenceInfo[] = []
    for (const id of await this.store.listRecords('licence')) {
      try {
        const { key, escrows: _escrows, ...info } = await this.readLicence(secrets, id)
        key.fill(0)
        out.push(info)
      } catch (err: any) {
        this.log.error('skipping licence record %s: %s', id, err.code ?? err.name)
      }
    }
    return out
  }

  async renewalRequest (args: { content: string }): Promise<RenewalRequestInfo> {
    const secrets = this.unlocked()
    const licence = await this.readLicence(secrets, args.content)
    licence.key.fill(0)
    const nonce = new Uint8Array(randomBytes(LIMITS.renewalNonce))
    const body = { v: 1, offer: CID.parse(licence.offer), nonce, at: this.now() }
    const signed = signWithDeviceKey('renewal-request', body, secrets.signingKey, await this.signingCertificate())
    this.renewals.set(args.content, { request: signedId(signed).toString(), nonce })
    return { request: encodeObject(signed), offer: licence.offer, escrows: licence.escrows }
  }

  async renew (args: { content: string, renewal: Uint8Array }): Promise<LicenceInfo> {
    const secrets = this.unlocked()
    const pending = this.renewals.get(args.content)
    if (pending == null) throw new BadRenewalError('no renewal request of this licence is out: ask for one first')
    const licence = await this.readLicence(secrets, args.content)
    try {
      const renewal = parseSignedRenewal(decodeObject(args.renewal))
      const escrow = await verifyPeerSigned(renewal, 'renewal')
      const { body } = renewal
      // only an escrow of the offer may vouch, and only for the request this device made
      if (!licence.escrows.includes(escrow)) throw new BadRenewalError('the renewal is not signed by an escrow of the offer')
      if (body.request.toString() !== pending.request || !bytesEqual(body.nonce, pending.nonce)) throw new BadRenewalError()
      if (body.device !== secrets.deviceId || body.offer.toString() !== licence.offer) throw new BadRenewalError('the renewal names another device or offer')
      this.renewals.delete(args.content)
      const now = this.now()
      const { key, ...rest } = licence
      const renewed: LicenceRecord = { ...rest, key, playUntil: now + licence.licenceTtl, renewedAt: now }
      await this.store.putRecord(secrets, 'licence', args.content, { v: 1, ...renewed })
      this.log('licence of %s renewed until %s', args.content, new Date(renewed.playUntil).toISOString())
      const { key: _key, escrows: _escrows, ...info } = renewed
      return info
    } finally {
      licence.key.fill(0)
    }
  }

  /** The sealed licence of a content; throws NoLicenceError when there is none */
  private async readLicence (secrets: DeviceSecrets, content: string): Promise<LicenceRecord> {
    const record = await this.store.getRecord(secrets, 'licence', content)
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

  /**
   * With `available` below the chunk count, the play follows a download still writing
   * `input` in order: `playFeed` tells it of each further chunk on disk.
   */
  async play (args: { content: string, manifest: Uint8Array, input: string, output: string, available?: number }, onProgress?: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const secrets = this.unlocked()
    const manifest = parseManifest(decodeObject(args.manifest))
    if (contentIdOf(manifest).toString() !== args.content) throw new BadDeviceRequestError('the manifest is not that of this content')
    let feed: ChunkFeed | undefined
    if (args.available != null && args.available < manifest.chunkCount) {
      if (this.feeds.has(args.content)) throw new PlayBusyError()
      // registered before the first await: the node's next message may already feed it
      feed = new ChunkFeed(args.available)
      this.feeds.set(args.content, feed)
    }
    try {
      const licence = await this.readLicence(secrets, args.content)
      const { key } = licence
      try {
        // a software device trusts the machine's clock: see the docs on what that allows
        if (this.now() > licence.playUntil) {
          throw new LicenceExpiredError(`the licence played offline until ${new Date(licence.playUntil).toISOString()}: renew it online (keyfair renew ${args.content})`)
        }
        const bytes = await decryptFile(args.input, args.output, manifest, key, { onProgress, feed })
        return { bytes }
      } finally {
        key.fill(0)
      }
    } finally {
      if (feed != null) this.feeds.delete(args.content)
    }
  }

  /** More of a followed download is on disk (`available` chunks from the first), or it stopped */
  async playFeed (args: { content: string, available?: number, stopped?: boolean }): Promise<void> {
    const feed = this.feeds.get(args.content)
    // the play may have ended (failed) already: nothing is following this content
    if (feed == null) return
    if (args.stopped === true) feed.stop()
    else if (args.available != null) feed.advance(args.available)
  }

  /** Drops the secrets; KeyObjects cannot be wiped from JS, so they are only released */
  private forget (): void {
    if (this.secrets != null) this.secrets.recordKey.fill(0)
    this.secrets = undefined
    this.exponents.clear()
    this.blindingInverses = new WeakMap()
    this.preparedFactors.clear()
    this.renewals.clear()
    this.signingCertificateDer = undefined
    // opened records hold blinding factors and unblinded shares
    for (const p of this.openPurchases.values()) {
      for (const share of p.record.shares) {
        share.r.fill(0)
        share.x?.fill(0)
      }
    }
    this.openPurchases.clear()
    this.purchaseInfos.clear()
  }

  private unlocked (): DeviceSecrets {
    if (this.secrets == null) throw new DeviceLockedError()
    return this.secrets
  }

  private async signingCertificate (): Promise<Uint8Array> {
    if (this.signingCertificateDer != null) return this.signingCertificateDer
    const pem = await this.store.readPublic(CERT_FILES.signing)
    if (pem == null) throw new NotEnrolledError()
    const der = new Uint8Array(new X509Certificate(pem).raw)
    // only while unlocked: lock and unlock read it again
    if (this.secrets != null) this.signingCertificateDer = der
    return der
  }

  /** The (n, e_T) key imported for OpenSSL, kept for the purchase's next operations */
  private publicKeyOf (n: bigint, eT: bigint): RawPublicKey | undefined {
    const id = `${n.toString(36)}/${eT.toString(36)}`
    let key = this.publicKeys.get(id)
    if (key === undefined) {
      key = rawPublicKey(n, eT) ?? null
      if (this.publicKeys.size >= MAX_PUBLIC_KEYS) this.publicKeys.delete(this.publicKeys.keys().next().value!)
      this.publicKeys.set(id, key)
    }
    return key ?? undefined
  }

  private async fail (secrets: DeviceSecrets, p: OpenPurchase): Promise<void> {
    p.record.state = 'failed'
    await this.savePurchase(secrets, p)
  }

  /**
   * Seals a purchase record to disk. The opened copy stays cached only when the disk
   * holds exactly it: a failed write drops it, so nothing unsealed is ever relied on.
   */
  private async savePurchase (secrets: DeviceSecrets, p: OpenPurchase): Promise<void> {
    try {
      await this.store.putRecord(secrets, 'purchase', p.record.purchase, p.record)
    } catch (err) {
      this.openPurchases.delete(p.record.purchase)
      this.purchaseInfos.delete(p.record.purchase)
      throw err
    }
    p.unsaved = false
    this.cachePurchase(p)
  }

  private cachePurchase (p: OpenPurchase): void {
    this.openPurchases.delete(p.record.purchase)
    if (this.openPurchases.size >= MAX_OPEN_PURCHASES) {
      const evictable = [...this.openPurchases.values()].find(o => o.unsaved !== true)
      if (evictable != null) this.openPurchases.delete(evictable.record.purchase)
    }
    this.openPurchases.set(p.record.purchase, p)
    this.purchaseInfos.set(p.record.purchase, infoOf(p))
  }

  private async loadPurchase (id: string): Promise<OpenPurchase> {
    if (typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id)) throw new UnknownPurchaseError()
    const secrets = this.unlocked()
    // each step of a purchase would otherwise re-open and re-check the same record
    const cached = this.openPurchases.get(id)
    if (cached != null) return cached
    const opened = await this.readPurchase(secrets, id)
    this.cachePurchase(opened)
    return opened
  }

  private async readPurchase (secrets: DeviceSecrets, id: string): Promise<OpenPurchase> {
    const value = await this.store.getRecord(secrets, 'purchase', id)
    if (value === undefined) throw new UnknownPurchaseError()
    const r = check.expectRecord(value, 'purchase')
    const record: PurchaseRecord = {
      v: 1,
      purchase: check.expectString(r.purchase, 'purchase', 64),
      offer: check.expectBytes(r.offer, 'offer', 1 << 24),
      manifest: check.expectBytes(r.manifest, 'manifest', 1 << 28),
      buyer: check.expectString(r.buyer, 'buyer', 128),
      state: check.expectString(r.state, 'state', 16) as PurchaseState,
      createdAt: check.expectUint(r.createdAt, 'createdAt'),
      shares: check.expectArray(r.shares, 'shares', 64).map(s => {
        const o = check.expectRecord(s, 'share')
        const share: ShareState = { j: check.expectUint(o.j, 'j'), r: check.expectBytes(o.r, 'r', 1024), request: check.expectBytes(o.request, 'request', 1 << 24) }
        if (o.x !== undefined) share.x = check.expectBytes(o.x, 'x', 1024)
        if (o.accepted === true) share.accepted = true
        if (o.faulty === true) share.faulty = true
        return share
      })
    }
    if (r.licence !== undefined) record.licence = check.expectBytes(r.licence, 'licence', 1 << 20)
    if (r.fault !== undefined) {
      if (!DISPUTE_PARTS.includes(r.fault as DisputePart)) throw new BadDeviceRequestError('sealed record damaged: fault')
      record.fault = r.fault as DisputePart
    }
    return this.parsePurchase(record)
  }

  /** Parses and checks a purchase's public objects: the offer's seller signature, manifest and licence */
  private async parsePurchase (record: PurchaseRecord): Promise<OpenPurchase> {
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

  private exponentOf (offer: Offer): bigint {
    const cid = termsCid(offer.terms)
    const key = cid.toString()
    let eT = this.exponents.get(key)
    if (eT === undefined) {
      eT = priceExponent(cid.bytes)
      this.exponents.set(key, eT)
    }
    return eT
  }
}

function parseCertificate (pem: unknown, what: string): X509Certificate {
  if (typeof pem !== 'string') throw new BadDeviceRequestError(`the ${what} certificate must be PEM text`)
  try {
    return new X509Certificate(pem)
  } catch {
    throw new BadDeviceRequestError(`the ${what} certificate is not a valid X.509 certificate`)
  }
}

function sharesOf (p: OpenPurchase): WrappedShareRef[] {
  return p.licence?.body.shares ?? p.offer.body.shares
}

function acceptedOf (record: PurchaseRecord): ShareState[] {
  return record.shares.filter(s => s.accepted === true)
}

function infoOf (p: OpenPurchase): PurchaseInfo {
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

