// The escrow's rules (docs/protocol.md, Ledger): who may buy a blind decryption, what it costs,
// and how each hold ends. Protocol handlers parse frames and call this; every
// refusal is a typed error thrown before anything is written.
// Longer than most files on purpose: the checks of each request read in the order they run
// (cheapest first, the private-key operation last), which splitting would scatter.
import { randomBytes } from 'node:crypto'
import { ExponentError, bytesEqual, os2ip, priceExponent, rawPublic } from '../../device/crypto/index.ts'
import { cidOfBytes, decodeObject, encodeObject, encodeWithEncoded } from '../../device/objects/codec.ts'
import { parseSignedDispute, parseSignedOffer, parseSignedReceipt, parseSignedRenewalRequest, parseSignedUnblindRequest, termsCid } from '../../device/objects/market.ts'
import { signWithPeerKey, signedId, verifyDeviceSigned, verifyPeerSigned } from '../../device/objects/signed.ts'
import { CrlStaleError } from '../../device/pki/index.ts'
import {
  BadBlindedError, BadDisputeError, ClockWindowError, CurrencyError, EscrowNotReadyError,
  HoldEndedError, InsufficientFundsError, NotBuyerError, NotNamedError, OfferExpiredError, PurchaseIdUsedError, UnknownPurchaseError, WrongAmountError
} from './errors.ts'
import { HoldCommitter } from './commits.ts'
import { judgeOpenedDispute } from './judge.ts'
import type { Verdict } from './judge.ts'
import type { LedgerStore, HoldRecord, NewHold, OpenHoldResult, ReservationRecord } from './ledger-store.ts'
import type { CancelAnswer, ReserveAnswer, ReserveRequest } from '../../protocols/escrow/reserve.ts'
import type { AccountAnswer, HoldSummary } from '../../protocols/escrow/account.ts'
import type { EscrowInfoAnswer } from '../../protocols/escrow/info.ts'
import { SETTLE_LIMITS } from '../../protocols/escrow/settle.ts'
import type { SettleAnswer } from '../../protocols/escrow/settle.ts'
import type { Unblinder } from './unblind.ts'
import type { Dispute, Offer, Renewal, UnblindAnswer, UnblindRequest } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { CertificatePurpose, TrustStore, VerifiedCertificate } from '../../device/pki/index.ts'
import type { Logger, PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export const DEFAULT_HOLD_TTL_MS = 7 * 24 * 3600_000
export const DEFAULT_CLOCK_WINDOW_MS = 5 * 60_000
/** a reservation not followed by the device's request goes back to the buyer after this */
export const DEFAULT_RESERVATION_TTL_MS = 2 * 60_000
/** Offers whose seller signature was checked, by offer CID; bounded against floods of distinct offers */
export const MAX_CACHED_OFFERS = 4096

export interface EscrowCredentials {
  certificate: string
  root: string
  trust: TrustStore
}

export interface EscrowInit {
  peerId: string
  /** the node's libp2p key: signs answers */
  privateKey: PrivateKey
  /** the escrow's RSA key: in this thread (EscrowKey) or in worker threads (UnblindPool) */
  key: Unblinder
  ledger: LedgerStore
  log: Logger
  currency: string
  holdTtlMs?: number
  /** how long a reservation waits for the device's request before it goes back to the buyer */
  reservationTtlMs?: number
  clockWindowMs?: number
  now?: () => number
  /**
   * Adversarial testing only: answer with the exponent of other terms, as a faulty
   * or cheating escrow would. Buyers' devices catch it and claim a refund by fraud proof.
   */
  faultyAnswers?: boolean
  /** fetches a fresh CRL into the trust store (on a timer, and when the held one went stale) */
  refreshCrl?: () => Promise<void>
  /**
   * Holds of requests that finish together are committed in one transaction (one
   * fsync); every answer still leaves only after its own hold committed. Default true;
   * false commits each hold in its own transaction.
   */
  groupCommit?: boolean
}

/** An offer whose seller signature verified: its CID, signer and terms CID */
interface VerifiedOffer {
  id: string
  signer: string
  terms: CID
}

export class Escrow {
  readonly peerId: string
  private readonly init: EscrowInit
  private readonly now: () => number
  private credentials?: EscrowCredentials
  private readonly commits?: HoldCommitter
  /** offers are immutable and signed: one signature check per offer CID is enough */
  private readonly offers = new Map<string, VerifiedOffer>()
  /** open holds per buyer, kept with the ledger: a large settlement frame is admitted on it before it is read */
  private readonly openHolds = new Map<string, number>()

  constructor (init: EscrowInit) {
    this.init = init
    this.peerId = init.peerId
    this.now = init.now ?? Date.now
    if (init.groupCommit !== false) this.commits = new HoldCommitter(init.ledger)
  }

  /** the currency this escrow settles, enrolled or not: its ledger's amounts are its minor units */
  get currency (): string {
    return this.init.currency
  }

  /** group commit figures (commits, holds, largest group) */
  get commitStats (): { commits: number, holds: number, largest: number } | undefined {
    return this.commits?.stats
  }

  /** private-key operations the key (its worker threads, or this thread) has done */
  get privateOperations (): number {
    return this.init.key.operations ?? 0
  }

  /** Commits the holds waiting for the next group commit now (before the ledger closes) */
  async flush (): Promise<void> {
    await this.commits?.flush()
  }

  /** Reads which buyers hold open holds (at start, before serving) */
  async load (): Promise<void> {
    this.openHolds.clear()
    for (const [buyer, n] of await this.init.ledger.openHoldBuyers()) this.openHolds.set(buyer, n)
  }

  /** Ends the holds whose time has passed (to their sellers) and the reservations (back to their buyers) */
  async expireDue (now = this.now()): Promise<HoldRecord[]> {
    const ended = await this.init.ledger.expireDue(now)
    for (const hold of ended) this.holdEnded(hold.buyer)
    const returned = await this.init.ledger.expireReservations(now)
    if (returned.length > 0) this.init.log('gave %d unanswered reservations back to their buyers', returned.length)
    return ended
  }

  private holdEnded (buyer: string): void {
    const n = (this.openHolds.get(buyer) ?? 0) - 1
    if (n > 0) this.openHolds.set(buyer, n)
    else this.openHolds.delete(buyer)
  }

  get ready (): boolean {
    return this.credentials != null
  }

  /** Certificates from enrollment: until then the escrow refuses requests */
  setCredentials (credentials: EscrowCredentials): void {
    this.credentials = credentials
  }

  get trust (): TrustStore | undefined {
    return this.credentials?.trust
  }

  info (): EscrowInfoAnswer {
    const c = this.requireCredentials()
    return {
      v: 1,
      peer: this.peerId,
      n: this.init.key.modulus,
      certificate: c.certificate,
      root: c.root,
      currency: this.init.currency,
      holdTtlMs: this.init.holdTtlMs ?? DEFAULT_HOLD_TTL_MS
    }
  }

  /**
   * States, signed, that the requesting device's certificate is valid and unrevoked
   * under this escrow's current CRL: what a device needs to play a licence past its
   * offline lifetime. Free, and writes nothing; a revoked device gets ERR_CERT_REVOKED.
   */
  async renew (value: unknown): Promise<Uint8Array> {
    const request = parseSignedRenewalRequest(value)
    const device = await this.verifyDevice(request)
    const now = this.now()
    const window = this.init.clockWindowMs ?? DEFAULT_CLOCK_WINDOW_MS
    if (Math.abs(request.body.at - now) > window) throw new ClockWindowError(`the request is dated ${new Date(request.body.at).toISOString()}, outside ±${window / 1000} s of this escrow's clock`)
    const crl = this.requireCredentials().trust.crl
    if (crl == null) throw new CrlStaleError('this escrow holds no current CRL')
    const body: Renewal = {
      v: 1,
      request: signedId(request),
      device: device.subjectCommonName,
      offer: request.body.offer,
      nonce: request.body.nonce,
      crl: Number(crl.number),
      at: now
    }
    this.init.log('renewal for device %s (CRL %s)', device.subjectCommonName, crl.number)
    return encodeObject(await signWithPeerKey('renewal', body, this.init.privateKey))
  }

  /**
   * Reserves the offer's price from the caller's account for (device, purchase): the same
   * checks as a request (offer names this escrow, unexpired, currency, price, the device
   * certified and unrevoked, the seller's signature) but no answer. The device's request
   * under the purchase then takes it as its hold.
   */
  async reserve (request: ReserveRequest, caller: string): Promise<ReserveAnswer> {
    const offer = parseSignedOffer(decodeObject(request.offer))
    const terms = offer.body.terms
    const named = terms.escrows[request.j - 1]
    if (named == null || named.peer !== this.peerId || !bytesEqual(named.n, this.init.key.modulus)) {
      throw new NotNamedError(`the offer does not name this escrow (and its key) for share ${request.j}`)
    }
    const now = this.now()
    if (terms.expiry <= now) throw new OfferExpiredError(`the offer expired at ${isoTime(terms.expiry)}`)
    if (terms.currency !== this.init.currency) throw new CurrencyError(`this escrow settles ${this.init.currency}, not ${terms.currency}`)
    if (request.amount !== terms.price) throw new WrongAmountError(`the reservation is of ${request.amount}, the offer's price per share is ${terms.price}`)
    const device = await this.verifyCertificate(request.device, 'device-signing')
    const verified = await this.verifyOffer(offer)
    if (verified.signer !== terms.seller) throw new NotNamedError('the offer is not signed by its seller')
    const { reservation, charged } = await this.init.ledger.reserve({
      id: randomBytes(16).toString('hex'),
      device: device.subjectCommonName,
      purchase: request.purchase,
      j: request.j,
      buyer: caller,
      seller: terms.seller,
      amount: terms.price,
      offer: verified.id,
      createdAt: now,
      expiresAt: now + (this.init.reservationTtlMs ?? DEFAULT_RESERVATION_TTL_MS)
    })
    this.init.log('%s reservation %s: %d from %s for purchase %s share %d', charged ? 'opened' : 'repeated', reservation.id, reservation.amount, caller, reservation.purchase, reservation.j)
    return { v: 1, reservation: reservation.id, amount: reservation.amount, expiresAt: reservation.expiresAt }
  }

  /** The caller's unanswered reservation of `purchase` back to it; an answered purchase stays paid (ERR_ALREADY_ANSWERED) */
  async cancelReservation (purchase: string, caller: string): Promise<CancelAnswer> {
    const { ended, reservation } = await this.init.ledger.cancelReservation(caller, purchase, 'cancelled by the buyer', this.now())
    if (ended) this.init.log('reservation %s of purchase %s cancelled by its buyer', reservation?.id, purchase)
    return { v: 1, cancelled: ended }
  }

  /**
   * Answers a paid blind request with z = b^d_T, after every rule of docs/protocol.md (escrow/unblind) holds.
   * The hold and the signed answer are committed before the answer is returned.
   */
  async unblind (value: unknown, caller: string): Promise<Uint8Array> {
    const request = parseSignedUnblindRequest(value)
    const { body } = request
    // the answer belongs to the buyer's connection only, a stored one too: another peer
    // replaying the buyer's bytes gets nothing, before anything is looked up
    if (body.buyer !== caller) throw new NotBuyerError(`the request charges ${body.buyer}, not the caller ${caller}`)
    // the offer is encoded once: its bytes name it and are spliced into the body's
    // encoding (whose CID the device signed), and those into the request's, whose CID
    // names the request and whose bytes are kept with the hold
    const offerBytes = encodeObject(body.offer)
    const bodyBytes = encodeWithEncoded(body as unknown as Record<string, unknown>, { offer: offerBytes })
    const requestBytes = encodeWithEncoded(request as unknown as Record<string, unknown>, { body: bodyBytes })
    const requestCid = cidOfBytes(requestBytes)
    const requestId = requestCid.toString()
    const { ledger } = this.init
    // exactly these bytes were checked and paid for before: their answer again, whatever
    // happened since (a crash, a CRL not fetched yet after a restart)
    // one ledger read: the stored answer, the buyer's balance and, for a device whose
    // certificate was checked before, whether it used this purchase id (trusted only once
    // the certificate verifies again below)
    const claimed = this.claimedDevice(request)
    const state = await ledger.requestState(requestId, body.buyer, claimed == null ? undefined : { device: claimed, purchase: body.purchase })
    const { answer: paid, balance } = state
    if (paid != null) return paid
    // cheapest first: comparisons, then the public-key checks
    // (certificate chain, signatures), and the private-key operation last of all
    const terms = body.offer.body.terms
    const named = terms.escrows[body.j - 1]
    if (named == null || named.peer !== this.peerId || !bytesEqual(named.n, this.init.key.modulus)) {
      throw new NotNamedError(`the offer does not name this escrow (and its key) for share ${body.j}`)
    }
    const now = this.now()
    if (terms.expiry <= now) throw new OfferExpiredError(`the offer expired at ${isoTime(terms.expiry)}`)
    if (terms.currency !== this.init.currency) throw new CurrencyError(`this escrow settles ${this.init.currency}, not ${terms.currency}`)
    if (body.amount !== terms.price) throw new WrongAmountError(`the request pays ${body.amount}, the offer's price per share is ${terms.price}`)
    const window = this.init.clockWindowMs ?? DEFAULT_CLOCK_WINDOW_MS
    if (Math.abs(body.at - now) > window) throw new ClockWindowError(`the request is dated ${isoTime(body.at)}, outside ±${window / 1000} s of this escrow's clock`)
    const b = os2ip(body.b)
    if (b < 1n || b >= this.init.key.n) throw new BadBlindedError('b is not in [1, n − 1]')
    // the balance was read outside the hold's transaction, which checks again and stays the
    // authority; short of funds, the purchase may still have its price reserved
    if (balance < terms.price && !(await this.reserved(body.buyer, body.purchase))) throw new InsufficientFundsError(body.buyer, balance, terms.price)
    const device = await this.verifyDevice(request, cidOfBytes(bodyBytes))
    const used = claimed === device.subjectCommonName && state.used != null ? state.used : await ledger.purchaseUsed(device.subjectCommonName, body.purchase)
    if (used) {
      // a copy of these very bytes, sent at the same time, was paid since the first look: its answer
      const raced = await ledger.answerByRequest(requestId)
      if (raced != null) return raced
      throw new PurchaseIdUsedError(body.purchase)
    }
    const offer = await this.verifyOffer(body.offer, cidOfBytes(offerBytes))
    if (offer.signer !== terms.seller) throw new NotNamedError('the offer is not signed by its seller')

    let z: Uint8Array
    try {
      z = this.init.faultyAnswers === true
        ? await this.init.key.unblind(body.b, { ...terms, price: terms.price + 1 })
        : await this.init.key.unblind(body.b, terms, offer.terms)
    } catch (err) {
      if (err instanceof ExponentError) throw new ExponentError('the terms give an exponent this key cannot invert: the seller must change them')
      throw err
    }
    const holdId = randomBytes(16).toString('hex')
    const answerBody: UnblindAnswer = { v: 1, request: requestCid, purchase: body.purchase, j: body.j, z, hold: holdId }
    const answer = encodeObject(await signWithPeerKey('unblind-answer', answerBody, this.init.privateKey))
    // the price moves into the hold in the transaction that stores the answer; the answer leaves after commit
    const { hold, charged } = await this.commit({
      id: holdId,
      device: device.subjectCommonName,
      purchase: body.purchase,
      j: body.j,
      buyer: body.buyer,
      seller: terms.seller,
      amount: terms.price,
      offer: offer.id,
      request: requestId,
      requestBytes,
      answer,
      createdAt: now,
      expiresAt: now + (this.init.holdTtlMs ?? DEFAULT_HOLD_TTL_MS)
    })
    if (charged) this.openHolds.set(hold.buyer, (this.openHolds.get(hold.buyer) ?? 0) + 1)
    this.init.log('%s hold %s: %d from %s for purchase %s share %d', charged ? 'opened' : 'replayed', hold.id, hold.amount, hold.buyer, hold.purchase, hold.j)
    return hold.answer
  }

  /** Whether the buyer holds an open reservation of this purchase id (the hold's transaction checks its device) */
  private async reserved (buyer: string, purchase: string): Promise<boolean> {
    const open: ReservationRecord[] = await this.init.ledger.reservations({ buyer, state: 'open', limit: 1000 })
    return open.some(r => r.purchase === purchase)
  }

  /** The hold written and durable (group commit, or a transaction of its own) */
  private async commit (hold: NewHold): Promise<OpenHoldResult> {
    return this.commits != null ? this.commits.open(hold) : this.init.ledger.openHold(hold)
  }

  /** The offer's seller signature, checked once per offer CID (`cid`: that of these bytes) */
  private async verifyOffer (offer: Signed<Offer>, cid: CID = signedId(offer)): Promise<VerifiedOffer> {
    const id = cid.toString()
    const cached = this.offers.get(id)
    if (cached !== undefined) return cached
    const signer = await verifyPeerSigned(offer, 'offer')
    const verified: VerifiedOffer = { id, signer, terms: termsCid(offer.body.terms) }
    if (this.offers.size >= MAX_CACHED_OFFERS) this.offers.delete(this.offers.keys().next().value!)
    this.offers.set(id, verified)
    return verified
  }

  /** A device-signed receipt releases the hold to the seller; a dispute is judged on its proof */
  async settle (value: unknown): Promise<SettleAnswer> {
    const kind = (value as { kind?: unknown } | null)?.kind
    if (kind === 'receipt') return this.receipt(value)
    if (kind === 'dispute') return this.dispute(value)
    throw new BadDisputeError('settle takes a signed receipt or a signed dispute')
  }

  /**
   * Whether a settlement frame of `length` bytes (a chunk dispute, larger than any receipt)
   * may come from `caller`: only from a buyer with an open hold here, and no larger than
   * a chunk and its manifest. One indexed read, before the body is buffered.
   */
  admitsSettlement (caller: string, length: number): boolean {
    return length <= SETTLE_LIMITS.maxFrameBytes && (this.openHolds.get(caller) ?? 0) > 0
  }

  async account (caller: string): Promise<AccountAnswer> {
    const { ledger } = this.init
    return {
      v: 1,
      account: caller,
      balance: await ledger.balance(caller),
      currency: this.init.currency,
      holds: (await ledger.holds({ buyer: caller, limit: 100 })).map(holdSummary),
      sales: (await ledger.holds({ seller: caller, limit: 100 })).map(holdSummary),
      postings: await ledger.postings({ account: caller, limit: 100 })
    }
  }

  private async receipt (value: unknown): Promise<SettleAnswer> {
    const receipt = parseSignedReceipt(value)
    const device = await this.verifyDevice(receipt)
    const hold = await this.holdOf(device, receipt.body.purchase)
    if (receipt.body.offer.toString() !== hold.offer) throw new BadDisputeError('the receipt names another offer than the purchase')
    if (hold.state === 'refunded') throw new HoldEndedError(`hold ${hold.id} was refunded`)
    const { ended } = await this.init.ledger.endHold(hold.id, 'release', 'receipt', this.now())
    if (ended) this.holdEnded(hold.buyer)
    return result(hold, 'released', ended, false, 'receipt')
  }

  private async dispute (value: unknown): Promise<SettleAnswer> {
    const dispute = parseSignedDispute(value)
    const device = await this.verifyDevice(dispute)
    const hold = await this.holdOf(device, dispute.body.purchase)
    if (dispute.body.offer.toString() !== hold.offer) throw new BadDisputeError('the dispute names another offer than the purchase')
    if (hold.state !== 'open') throw new HoldEndedError(`hold ${hold.id} has already ended (${hold.state})`)
    const request = parseSignedUnblindRequest(decodeObject(hold.requestBytes))
    // judged before anything is written: a malformed dispute leaves the hold open
    const verdict = await this.judge(dispute.body, request, hold, device)
    const end = verdict.sellerAtFault ? 'refund' : 'release'
    const { ended, hold: after } = await this.init.ledger.endHold(hold.id, end, `${dispute.body.reason} dispute: ${verdict.reason}`, this.now())
    if (ended) this.holdEnded(hold.buyer)
    if (!ended) throw new HoldEndedError(`hold ${hold.id} has already ended (${after.state})`)
    this.init.log('%s dispute on hold %s: %s', dispute.body.reason, hold.id, verdict.reason)
    return result(hold, end === 'refund' ? 'refunded' : 'released', true, !verdict.sellerAtFault, verdict.reason)
  }

  /**
   * Decides a dispute from its proof alone (docs/protocol.md, Ledger): refund only if this escrow's
   * answer was wrong (fraud), or the openings prove the seller at fault (see judge.ts).
   */
  private async judge (dispute: Dispute, request: Signed<UnblindRequest>, hold: HoldRecord, device: VerifiedCertificate): Promise<Verdict> {
    if (dispute.reason === 'fraud') {
      const eT = priceExponent(termsCid(request.body.offer.body.terms).bytes)
      // our own stored answer is the one that counts, whatever the dispute carries
      const answer = decodeObject(hold.answer) as Signed<UnblindAnswer>
      const z = os2ip(answer.body.z)
      const wrong = z >= this.init.key.n || rawPublic(z, eT, this.init.key.n) !== os2ip(request.body.b)
      return wrong
        ? { sellerAtFault: true, reason: 'this escrow\'s answer fails z^e_T = b: refunded' }
        : { sellerAtFault: false, reason: 'this escrow\'s answer is correct' }
    }
    return judgeOpenedDispute(dispute, {
      offer: request.body.offer,
      device: device.subjectCommonName,
      verifyEncryptionCertificate: async pem => this.verifyCertificate(pem, 'device-encryption')
    })
  }

  private async holdOf (device: VerifiedCertificate, purchase: string): Promise<HoldRecord> {
    const hold = await this.init.ledger.holdByPurchase(device.subjectCommonName, purchase)
    if (hold == null) throw new UnknownPurchaseError(`no purchase ${purchase} from this device at this escrow`)
    return hold
  }

  /** The CN of the device certificate a request carries, if the trust store checked it before */
  private claimedDevice (signed: Signed<unknown>): string | undefined {
    return 'device' in signed.signer ? this.credentials?.trust.checkedCommonName(signed.signer.device) : undefined
  }

  /** Device chain, revocation and signature; a stale CRL is refreshed once on demand */
  private async verifyDevice (signed: Signed<unknown>, bodyCid?: CID): Promise<VerifiedCertificate> {
    const { trust } = this.requireCredentials()
    const kind = signed.kind as 'unblind-request' | 'receipt' | 'dispute' | 'renewal-request'
    return this.withFreshCrl(() => verifyDeviceSigned(signed, kind, der => trust.verify(der, { purpose: 'device-signing', at: new Date(this.now()) }), bodyCid))
  }

  /** A certificate's agency chain and revocation, for one purpose */
  private async verifyCertificate (certificate: string, purpose: CertificatePurpose): Promise<VerifiedCertificate> {
    const { trust } = this.requireCredentials()
    return this.withFreshCrl(() => trust.verify(certificate, { purpose, at: new Date(this.now()) }))
  }

  /** Runs a check; if the CRL held went stale, fetches a fresh one and runs it once more */
  private async withFreshCrl (check: () => VerifiedCertificate): Promise<VerifiedCertificate> {
    try {
      return check()
    } catch (err) {
      if (!(err instanceof CrlStaleError) || this.init.refreshCrl == null) throw err
      await this.init.refreshCrl()
      return check()
    }
  }

  private requireCredentials (): EscrowCredentials {
    if (this.credentials == null) throw new EscrowNotReadyError('this escrow is not enrolled with an agency yet (keyfair escrow enroll)')
    return this.credentials
  }
}

/** A time from a request as ISO 8601, or the number itself where no Date can hold it (±8.64e15 ms) */
function isoTime (ms: number): string {
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? `${ms} ms since 1970` : date.toISOString()
}

function result (hold: HoldRecord, state: 'released' | 'refunded', ended: boolean, refused: boolean, reason: string): SettleAnswer {
  return { v: 1, hold: hold.id, purchase: hold.purchase, state, ended, refused, reason }
}

/** A hold as its buyer or seller sees it in the account answer: no other party's identity */
function holdSummary (h: HoldRecord): HoldSummary {
  return { hold: h.id, purchase: h.purchase, amount: h.amount, state: h.state, expiresAt: h.expiresAt }
}
