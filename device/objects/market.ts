// The marketplace's objects (v1): terms, offers, licences, and what the device and
// escrows exchange. Parsers check shape and internal consistency; signatures and
// certificates are checked by the caller (see signed.ts).
// One file for every object of the v1 wire format, so that the whole format is checked in
// one place against docs/protocol.md; each parser is short.
import { CID } from 'multiformats/cid'
import { DEM_LENGTH } from '../crypto/wrap.ts'
import { SALT_LENGTH, NONCE_PREFIX_LENGTH, MAX_CHUNK_SIZE, MAX_CHUNK_COUNT, CHUNK_HASH_LENGTH } from '../crypto/content.ts'
import { DEVICE_KEY_LENGTH } from '../crypto/bound.ts'
import { objectCid, parseCid } from './codec.ts'
import { ObjectError } from './errors.ts'
import { parseSigned } from './signed.ts'
import { createShapeChecks } from './validate.ts'
import type { ContentManifest } from '../crypto/content.ts'
import type { Signed } from './signed.ts'

export const LIMITS = {
  maxEscrows: 64,
  maxModulusBytes: 1024,
  maxTitle: 256,
  maxTags: 32,
  maxTag: 64,
  maxPeerId: 128,
  maxCurrency: 12,
  maxPurchaseId: 64,
  maxHoldId: 128,
  maxChunkBytes: MAX_CHUNK_SIZE + 16,
  maxDeviceKeyWrap: 1024,
  /** a licence plays offline at least this long before it must be renewed */
  minLicenceTtlMs: 1000,
  maxLicenceTtlMs: 10 * 366 * 86_400_000,
  renewalNonce: 16,
  maxCertificatePem: 16 * 1024
} as const

const check = createShapeChecks(message => new ObjectError(message))

export interface EscrowRef {
  /** the escrow's peer id: its account namespace and the key that signs its answers */
  peer: string
  /** the modulus of its certified RSA key, big-endian */
  n: Uint8Array
}

/** T of docs/protocol.md (Terms): what a buyer pays for, bound into the escrows' exponent e_T */
export interface Terms {
  v: 1
  seller: string
  /** CID of the content manifest */
  content: CID
  /** minor units paid to each of the t escrows used */
  price: number
  currency: string
  /** escrow j is escrows[j - 1] */
  escrows: EscrowRef[]
  t: number
  /** ms since the epoch after which escrows refuse requests under these terms */
  expiry: number
}

/** Share j wrapped for escrow j: c = I2OSP(x^e_T mod n_j), dem as in docs/protocol.md (Share wrap) */
export interface WrappedShareRef {
  j: number
  c: Uint8Array
  dem: Uint8Array
}

export interface Offer {
  v: 1
  terms: Terms
  title: string
  tags: string[]
  /** kc = SHA-256("keyfair/v1/kc" ‖ K) */
  kc: Uint8Array
  /** offer salt: AAD of each share's DEM */
  salt: Uint8Array
  /** open shares (K_dev = 0), one per escrow; empty when the seller sells device-bound licences only */
  shares: WrappedShareRef[]
  /**
   * How long a licence of this offer plays offline, in ms: past it the device plays
   * again only after an escrow of the offer has stated afresh that it is not revoked
   */
  licenceTtl: number
}

/** A device-bound licence (Fig. 5): shares of K ⊕ K_dev, and K_dev wrapped to one device */
export interface Licence {
  v: 1
  /** id of the signed offer this licence belongs to */
  offer: CID
  /** device id (see device/pki) of the device whose encryption key wraps kDev */
  device: string
  salt: Uint8Array
  shares: WrappedShareRef[]
  /** K_dev wrapped to the device's certified encryption key (RSA-OAEP-SHA256) */
  kDev: Uint8Array
  /** kcEsc = SHA-256("keyfair/v1/kc-esc" ‖ K_esc): the part the shares carry */
  kcEsc: Uint8Array
  /** kcDev = SHA-256("keyfair/v1/kc-dev" ‖ K_dev): the part the wrap carries */
  kcDev: Uint8Array
}

/** A device asks an escrow of an offer to state that it is not revoked (licence renewal) */
export interface RenewalRequest {
  v: 1
  /** id of the signed offer whose licence is renewed */
  offer: CID
  /** random, drawn by the device for this renewal: the statement must echo it */
  nonce: Uint8Array
  at: number
}

/** An escrow's signed statement: this device's certificate was valid and unrevoked under its CRL */
export interface Renewal {
  v: 1
  /** id of the signed request answered */
  request: CID
  device: string
  offer: CID
  nonce: Uint8Array
  /** number of the CRL the escrow checked against */
  crl: number
  at: number
}

export interface UnblindRequest {
  v: 1
  purchase: string
  offer: Signed<Offer>
  j: number
  /** b_j = c_j · r_j^e_T mod n_j, I2OSP in the length of n_j */
  b: Uint8Array
  /** minor units the buyer agrees to pay this escrow: the offer's price */
  amount: number
  /** the paying account: the buyer node's peer id */
  buyer: string
  at: number
}

export interface UnblindAnswer {
  v: 1
  /** id of the signed request answered */
  request: CID
  purchase: string
  j: number
  z: Uint8Array
  hold: string
}

export interface Receipt {
  v: 1
  purchase: string
  offer: CID
  at: number
}

export type DisputeReason = 'key' | 'chunk' | 'fraud'

/**
 * The part of a device-bound licence a key dispute opens: the shares of K_esc, the
 * K_dev wrap, or both (only when each matches its commitment and K does not)
 */
export type DisputePart = 'escrow' | 'device' | 'both'
export const DISPUTE_PARTS: readonly DisputePart[] = ['escrow', 'device', 'both']

/**
 * What the device's K_dev wrap w decrypts to: m = w^d mod n (the raw RSA value, k bytes),
 * under the device's certified encryption key. Anyone checks m^e = w and decodes m.
 * `m` is absent when w is not a ciphertext for that key at all (wrong length, ≥ n).
 */
export interface DeviceWrapOpening {
  /** the device's encryption certificate (PEM), issued by the agency to the signing device */
  certificate: string
  m?: Uint8Array
}

export interface Opening {
  j: number
  /** the unblinded KEM secret x_j of share j */
  x: Uint8Array
}

export interface Dispute {
  v: 1
  purchase: string
  offer: CID
  reason: DisputeReason
  /** key disputes over a device-bound licence: the part opened (absent for open offers) */
  part?: DisputePart
  /** every x_j the device used: key disputes (open, or parts 'escrow' and 'both') and chunk disputes */
  openings: Opening[]
  /** K_dev, checked against the licence's kcDev: part 'both' and chunk disputes over a licence */
  kDev?: Uint8Array
  /** part 'device': what the licence's K_dev wrap decrypts to */
  kDevWrap?: DeviceWrapOpening
  licence?: Signed<Licence>
  /** chunk dispute: a chunk that matches the manifest but fails under the committed key */
  chunk?: { index: number, data: Uint8Array }
  /** key and chunk disputes: the manifest (its CID is the offer's content id): its salt keys the wraps, its hashes prove a chunk */
  manifest?: ContentManifest
  /** fraud dispute: this escrow's own answer, failing z^e_T == b */
  fraud?: { request: Signed<UnblindRequest>, answer: Signed<UnblindAnswer> }
  at: number
}

function noExtraFields (o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) throw new ObjectError(`${what} has unknown field ${key}`)
  }
}

function version (o: Record<string, unknown>, what: string): 1 {
  if (o.v !== 1) throw new ObjectError(`${what}: unsupported version`)
  return 1
}

export function parseTerms (value: unknown): Terms {
  const o = check.expectRecord(value, 'terms')
  noExtraFields(o, ['v', 'seller', 'content', 'price', 'currency', 'escrows', 't', 'expiry'], 'terms')
  const escrows = check.expectArray(o.escrows, 'terms.escrows', LIMITS.maxEscrows).map((e, i) => {
    const r = check.expectRecord(e, `terms.escrows[${i}]`)
    noExtraFields(r, ['peer', 'n'], 'escrow')
    return {
      peer: check.expectString(r.peer, `terms.escrows[${i}].peer`, LIMITS.maxPeerId),
      n: check.expectBytes(r.n, `terms.escrows[${i}].n`, LIMITS.maxModulusBytes, 64)
    }
  })
  if (escrows.length === 0) throw new ObjectError('terms name no escrow')
  if (new Set(escrows.map(e => e.peer)).size !== escrows.length) throw new ObjectError('terms name an escrow twice')
  const t = check.expectUint(o.t, 'terms.t', escrows.length)
  if (t < 1) throw new ObjectError('terms.t must be at least 1')
  return {
    v: version(o, 'terms'),
    seller: check.expectString(o.seller, 'terms.seller', LIMITS.maxPeerId),
    content: parseCid(o.content, 'terms.content'),
    price: check.expectUint(o.price, 'terms.price'),
    currency: check.expectString(o.currency, 'terms.currency', LIMITS.maxCurrency),
    escrows,
    t,
    expiry: check.expectUint(o.expiry, 'terms.expiry')
  }
}

function parseShares (value: unknown, terms: Terms, what: string): WrappedShareRef[] {
  const shares = check.expectArray(value, `${what}.shares`, LIMITS.maxEscrows).map((s, i) => {
    const r = check.expectRecord(s, `${what}.shares[${i}]`)
    noExtraFields(r, ['j', 'c', 'dem'], 'share')
    const j = check.expectUint(r.j, `${what}.shares[${i}].j`, terms.escrows.length)
    const escrow = terms.escrows[j - 1]
    if (j !== i + 1 || escrow == null) throw new ObjectError(`${what}.shares must list j = 1..n in order`)
    return {
      j,
      c: check.expectBytes(r.c, `${what}.shares[${i}].c`, escrow.n.length, escrow.n.length),
      dem: check.expectBytes(r.dem, `${what}.shares[${i}].dem`, DEM_LENGTH, DEM_LENGTH)
    }
  })
  if (shares.length !== 0 && shares.length !== terms.escrows.length) {
    throw new ObjectError(`${what} must wrap one share per escrow`)
  }
  return shares
}

export function parseOffer (value: unknown): Offer {
  const o = check.expectRecord(value, 'offer')
  noExtraFields(o, ['v', 'terms', 'title', 'tags', 'kc', 'salt', 'shares', 'licenceTtl'], 'offer')
  const terms = parseTerms(o.terms)
  return {
    v: version(o, 'offer'),
    terms,
    title: check.expectString(o.title, 'offer.title', LIMITS.maxTitle),
    tags: check.expectArray(o.tags, 'offer.tags', LIMITS.maxTags).map((t, i) => check.expectString(t, `offer.tags[${i}]`, LIMITS.maxTag)),
    kc: check.expectBytes(o.kc, 'offer.kc', 32, 32),
    salt: check.expectBytes(o.salt, 'offer.salt', SALT_LENGTH, SALT_LENGTH),
    shares: parseShares(o.shares, terms, 'offer'),
    licenceTtl: parseLicenceTtl(o.licenceTtl, 'offer.licenceTtl')
  }
}

export function parseLicenceTtl (value: unknown, what: string): number {
  const ttl = check.expectUint(value, what, LIMITS.maxLicenceTtlMs)
  if (ttl < LIMITS.minLicenceTtlMs) throw new ObjectError(`${what} must be at least ${LIMITS.minLicenceTtlMs} ms`)
  return ttl
}

export function parseSignedOffer (value: unknown): Signed<Offer> {
  const signed = parseSigned(value, 'offer')
  return { ...signed, body: parseOffer(signed.body) }
}

export function parseLicence (value: unknown, terms: Terms): Licence {
  const o = check.expectRecord(value, 'licence')
  noExtraFields(o, ['v', 'offer', 'device', 'salt', 'shares', 'kDev', 'kcEsc', 'kcDev'], 'licence')
  const shares = parseShares(o.shares, terms, 'licence')
  if (shares.length === 0) throw new ObjectError('licence wraps no shares')
  return {
    v: version(o, 'licence'),
    offer: parseCid(o.offer, 'licence.offer'),
    device: check.expectString(o.device, 'licence.device', 64),
    salt: check.expectBytes(o.salt, 'licence.salt', SALT_LENGTH, SALT_LENGTH),
    shares,
    kDev: check.expectBytes(o.kDev, 'licence.kDev', LIMITS.maxDeviceKeyWrap, 1),
    kcEsc: check.expectBytes(o.kcEsc, 'licence.kcEsc', 32, 32),
    kcDev: check.expectBytes(o.kcDev, 'licence.kcDev', 32, 32)
  }
}

export function parseSignedLicence (value: unknown, terms: Terms): Signed<Licence> {
  const signed = parseSigned(value, 'licence')
  return { ...signed, body: parseLicence(signed.body, terms) }
}

export function parseUnblindRequest (value: unknown): UnblindRequest {
  const o = check.expectRecord(value, 'request')
  noExtraFields(o, ['v', 'purchase', 'offer', 'j', 'b', 'amount', 'buyer', 'at'], 'request')
  const offer = parseSignedOffer(o.offer)
  const j = check.expectUint(o.j, 'request.j', offer.body.terms.escrows.length)
  const escrow = offer.body.terms.escrows[j - 1]
  if (escrow == null) throw new ObjectError('request.j must name an escrow of the offer')
  return {
    v: version(o, 'request'),
    purchase: check.expectString(o.purchase, 'request.purchase', LIMITS.maxPurchaseId),
    offer,
    j,
    b: check.expectBytes(o.b, 'request.b', escrow.n.length, escrow.n.length),
    amount: check.expectUint(o.amount, 'request.amount'),
    buyer: check.expectString(o.buyer, 'request.buyer', LIMITS.maxPeerId),
    at: check.expectUint(o.at, 'request.at')
  }
}

export function parseSignedUnblindRequest (value: unknown): Signed<UnblindRequest> {
  const signed = parseSigned(value, 'unblind-request')
  return { ...signed, body: parseUnblindRequest(signed.body) }
}

export function parseRenewalRequest (value: unknown): RenewalRequest {
  const o = check.expectRecord(value, 'renewal request')
  noExtraFields(o, ['v', 'offer', 'nonce', 'at'], 'renewal request')
  return {
    v: version(o, 'renewal request'),
    offer: parseCid(o.offer, 'renewal request.offer'),
    nonce: check.expectBytes(o.nonce, 'renewal request.nonce', LIMITS.renewalNonce, LIMITS.renewalNonce),
    at: check.expectUint(o.at, 'renewal request.at')
  }
}

export function parseSignedRenewalRequest (value: unknown): Signed<RenewalRequest> {
  const signed = parseSigned(value, 'renewal-request')
  return { ...signed, body: parseRenewalRequest(signed.body) }
}

export function parseRenewal (value: unknown): Renewal {
  const o = check.expectRecord(value, 'renewal')
  noExtraFields(o, ['v', 'request', 'device', 'offer', 'nonce', 'crl', 'at'], 'renewal')
  return {
    v: version(o, 'renewal'),
    request: parseCid(o.request, 'renewal.request'),
    device: check.expectString(o.device, 'renewal.device', 64),
    offer: parseCid(o.offer, 'renewal.offer'),
    nonce: check.expectBytes(o.nonce, 'renewal.nonce', LIMITS.renewalNonce, LIMITS.renewalNonce),
    crl: check.expectUint(o.crl, 'renewal.crl'),
    at: check.expectUint(o.at, 'renewal.at')
  }
}

export function parseSignedRenewal (value: unknown): Signed<Renewal> {
  const signed = parseSigned(value, 'renewal')
  return { ...signed, body: parseRenewal(signed.body) }
}

export function parseUnblindAnswer (value: unknown): UnblindAnswer {
  const o = check.expectRecord(value, 'answer')
  noExtraFields(o, ['v', 'request', 'purchase', 'j', 'z', 'hold'], 'answer')
  return {
    v: version(o, 'answer'),
    request: parseCid(o.request, 'answer.request'),
    purchase: check.expectString(o.purchase, 'answer.purchase', LIMITS.maxPurchaseId),
    j: check.expectUint(o.j, 'answer.j', LIMITS.maxEscrows),
    z: check.expectBytes(o.z, 'answer.z', LIMITS.maxModulusBytes, 1),
    hold: check.expectString(o.hold, 'answer.hold', LIMITS.maxHoldId)
  }
}

export function parseSignedUnblindAnswer (value: unknown): Signed<UnblindAnswer> {
  const signed = parseSigned(value, 'unblind-answer')
  return { ...signed, body: parseUnblindAnswer(signed.body) }
}

export function parseReceipt (value: unknown): Receipt {
  const o = check.expectRecord(value, 'receipt')
  noExtraFields(o, ['v', 'purchase', 'offer', 'at'], 'receipt')
  return {
    v: version(o, 'receipt'),
    purchase: check.expectString(o.purchase, 'receipt.purchase', LIMITS.maxPurchaseId),
    offer: parseCid(o.offer, 'receipt.offer'),
    at: check.expectUint(o.at, 'receipt.at')
  }
}

export function parseSignedReceipt (value: unknown): Signed<Receipt> {
  const signed = parseSigned(value, 'receipt')
  return { ...signed, body: parseReceipt(signed.body) }
}

export function parseDispute (value: unknown): Dispute {
  const o = check.expectRecord(value, 'dispute')
  noExtraFields(o, ['v', 'purchase', 'offer', 'reason', 'part', 'openings', 'kDev', 'kDevWrap', 'licence', 'chunk', 'manifest', 'fraud', 'at'], 'dispute')
  const reason = o.reason
  if (reason !== 'key' && reason !== 'chunk' && reason !== 'fraud') throw new ObjectError('dispute.reason must be key, chunk or fraud')
  const dispute: Dispute = {
    v: version(o, 'dispute'),
    purchase: check.expectString(o.purchase, 'dispute.purchase', LIMITS.maxPurchaseId),
    offer: parseCid(o.offer, 'dispute.offer'),
    reason,
    openings: check.expectArray(o.openings, 'dispute.openings', LIMITS.maxEscrows).map((x, i) => {
      const r = check.expectRecord(x, `dispute.openings[${i}]`)
      noExtraFields(r, ['j', 'x'], 'opening')
      return {
        j: check.expectUint(r.j, `dispute.openings[${i}].j`, LIMITS.maxEscrows),
        x: check.expectBytes(r.x, `dispute.openings[${i}].x`, LIMITS.maxModulusBytes, 1)
      }
    }),
    at: check.expectUint(o.at, 'dispute.at')
  }
  if (o.part !== undefined) {
    if (!DISPUTE_PARTS.includes(o.part as DisputePart)) throw new ObjectError('dispute.part must be escrow, device or both')
    dispute.part = o.part as DisputePart
  }
  if (o.kDev !== undefined) dispute.kDev = check.expectBytes(o.kDev, 'dispute.kDev', DEVICE_KEY_LENGTH, DEVICE_KEY_LENGTH)
  if (o.kDevWrap !== undefined) {
    const w = check.expectRecord(o.kDevWrap, 'dispute.kDevWrap')
    noExtraFields(w, ['certificate', 'm'], 'dispute.kDevWrap')
    dispute.kDevWrap = { certificate: check.expectString(w.certificate, 'dispute.kDevWrap.certificate', LIMITS.maxCertificatePem) }
    if (w.m !== undefined) dispute.kDevWrap.m = check.expectBytes(w.m, 'dispute.kDevWrap.m', LIMITS.maxDeviceKeyWrap, 1)
  }
  if (o.licence !== undefined) dispute.licence = parseSigned(o.licence, 'licence') as Signed<Licence>
  if (o.chunk !== undefined) {
    const c = check.expectRecord(o.chunk, 'dispute.chunk')
    noExtraFields(c, ['index', 'data'], 'dispute.chunk')
    dispute.chunk = {
      index: check.expectUint(c.index, 'dispute.chunk.index', MAX_CHUNK_COUNT - 1),
      data: check.expectBytes(c.data, 'dispute.chunk.data', LIMITS.maxChunkBytes)
    }
  }
  if (o.manifest !== undefined) dispute.manifest = parseManifest(o.manifest)
  if (o.fraud !== undefined) {
    const f = check.expectRecord(o.fraud, 'dispute.fraud')
    noExtraFields(f, ['request', 'answer'], 'dispute.fraud')
    dispute.fraud = { request: parseSignedUnblindRequest(f.request), answer: parseSignedUnblindAnswer(f.answer) }
  }
  if (reason === 'fraud' && dispute.fraud == null) throw new ObjectError('a fraud dispute carries the request and answer')
  if (reason !== 'fraud' && dispute.manifest == null) throw new ObjectError(`a ${reason} dispute carries the manifest`)
  if (reason === 'chunk' && dispute.chunk == null) throw new ObjectError('a chunk dispute carries the chunk')
  // part 'device' opens the K_dev wrap instead of the shares
  if (reason !== 'fraud' && dispute.part !== 'device' && dispute.openings.length === 0) throw new ObjectError(`a ${reason} dispute opens the shares`)
  return dispute
}

export function parseSignedDispute (value: unknown): Signed<Dispute> {
  const signed = parseSigned(value, 'dispute')
  return { ...signed, body: parseDispute(signed.body) }
}

/** The manifest as a v1 object; its CID is the content id */
export function parseManifest (value: unknown): ContentManifest {
  const o = check.expectRecord(value, 'manifest')
  noExtraFields(o, ['v', 'chunkSize', 'size', 'chunkCount', 'salt', 'noncePrefix', 'chunkHashes'], 'manifest')
  const chunkCount = check.expectUint(o.chunkCount, 'manifest.chunkCount', MAX_CHUNK_COUNT)
  return {
    v: version(o, 'manifest'),
    chunkSize: check.expectUint(o.chunkSize, 'manifest.chunkSize', MAX_CHUNK_SIZE),
    size: check.expectUint(o.size, 'manifest.size'),
    chunkCount,
    salt: check.expectBytes(o.salt, 'manifest.salt', SALT_LENGTH, SALT_LENGTH),
    noncePrefix: check.expectBytes(o.noncePrefix, 'manifest.noncePrefix', NONCE_PREFIX_LENGTH, NONCE_PREFIX_LENGTH),
    chunkHashes: check.expectArray(o.chunkHashes, 'manifest.chunkHashes', chunkCount)
      .map((h, i) => check.expectBytes(h, `manifest.chunkHashes[${i}]`, CHUNK_HASH_LENGTH, CHUNK_HASH_LENGTH))
  }
}

export function contentIdOf (manifest: ContentManifest): CID {
  return objectCid(manifest)
}

export function termsCid (terms: Terms): CID {
  return objectCid(terms)
}

