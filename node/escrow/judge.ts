// Judging a key or chunk dispute from its proof alone (docs/protocol.md, Ledger), disclosing to the
// escrow no more than the dispute needs:
// - an open offer: the openings x_j rebuild K (K_dev = 0), checked against kc;
// - a licence, part 'escrow': the openings rebuild K_esc, checked against kcEsc (K_dev is
//   never sent, so K stays hidden from every escrow, and from all of them together);
// - part 'device': the raw RSA value m of the licence's K_dev wrap under the device's
//   certified encryption key, checked (m^e = w) and OAEP-decoded here, then against kcDev;
// - part 'both': the openings and K_dev, each checked against its commitment, and their
//   XOR against kc (this discloses K: only when the seller signed inconsistent commitments);
// - a chunk dispute: what rebuilds K, then the chunk under K.
// A dispute that does not fit one of these shapes is refused with ERR_BAD_DISPUTE before
// anything is written.
import {
  ChunkAuthError, checkDeviceWrapOpening, combineDeviceBound, combineShares, deviceKeyFromOpening, isDeviceWrapCiphertext,
  openVerifiedChunk, os2ip, priceExponent, rawPublic, unwrapShare, verifyChunk, verifyDevicePartCommitment,
  verifyEscrowPartCommitment, verifyKeyCommitment
} from '../../device/crypto/index.ts'
import { contentIdOf, parseSignedLicence, termsCid } from '../../device/objects/market.ts'
import { signedId, verifyPeerSigned } from '../../device/objects/signed.ts'
import { BadDisputeError } from './errors.ts'
import type { ContentManifest } from '../../device/crypto/index.ts'
import type { Dispute, Licence, Offer, WrappedShareRef } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { VerifiedCertificate } from '../../device/pki/index.ts'

export interface Verdict {
  /** true: the proof shows the seller at fault, the hold is refunded */
  sellerAtFault: boolean
  /** why, in words that name no key material */
  reason: string
}

export interface JudgeContext {
  /** the offer of the request this escrow was paid for (not the one the dispute names) */
  offer: Signed<Offer>
  /** the disputing device's id: the common name of the certificate that signed the dispute */
  device: string
  /** the agency chain and revocation check of a device encryption certificate (PEM) */
  verifyEncryptionCertificate: (pem: string) => Promise<VerifiedCertificate>
}

const refund = (reason: string): Verdict => ({ sellerAtFault: true, reason: `${reason}: refunded` })
const refuse = (reason: string): Verdict => ({ sellerAtFault: false, reason })

/** The verdict on a key or chunk dispute; throws BadDisputeError for a malformed one */
export async function judgeOpenedDispute (dispute: Dispute, context: JudgeContext): Promise<Verdict> {
  const { offer } = context
  const terms = offer.body.terms
  const licence = await licenceOf(dispute, context)
  checkShape(dispute, licence != null, terms.t)
  const { manifest } = dispute
  // the manifest's salt keys every share wrap, and its chunk hashes prove a chunk
  if (manifest == null || !contentIdOf(manifest).equals(terms.content)) throw new BadDisputeError(`a ${dispute.reason} dispute carries the manifest of the offered content`)

  if (licence != null && dispute.part === 'device') return judgeDeviceWrap(dispute, licence, context)

  const opened = openShares(dispute, offer, licence, manifest)
  if ('verdict' in opened) return opened.verdict
  const { secret } = opened
  try {
    if (licence == null) {
      // an open offer: K_esc is K
      if (!verifyKeyCommitment(secret, offer.body.kc)) return refund('the opened shares do not yield the committed key')
      if (dispute.reason === 'key') return refuse('the opened shares yield the committed key')
      return judgeChunk(dispute, manifest, secret)
    }
    if (!verifyEscrowPartCommitment(secret, licence.body.kcEsc)) return refund('the opened shares do not yield the licence\'s committed K_esc')
    if (dispute.reason === 'key' && dispute.part === 'escrow') return refuse('the opened shares yield the licence\'s committed K_esc')
    // part 'both' and chunk disputes: K_dev, taken only if it is the committed one
    const kDev = dispute.kDev!
    if (!verifyDevicePartCommitment(kDev, licence.body.kcDev)) return refuse('the K_dev opened is not the licence\'s committed K_dev')
    const key = combineDeviceBound(secret, kDev)
    try {
      if (!verifyKeyCommitment(key, offer.body.kc)) return refund('each part matches the licence\'s commitment, but together they do not yield the offer\'s key')
      if (dispute.reason === 'key') return refuse('the two parts yield the committed key')
      return judgeChunk(dispute, manifest, key)
    } finally {
      key.fill(0)
    }
  } finally {
    secret.fill(0)
  }
}

/** The licence a dispute carries, checked as the seller's licence for this offer and this device */
async function licenceOf (dispute: Dispute, context: JudgeContext): Promise<Signed<Licence> | undefined> {
  const { offer } = context
  if (dispute.licence == null) {
    if (offer.body.shares.length === 0) throw new BadDisputeError('the offer sells device-bound licences only: the dispute carries the licence')
    return undefined
  }
  const licence = parseSignedLicence(dispute.licence, offer.body.terms)
  if ((await verifyPeerSigned(licence, 'licence')) !== offer.body.terms.seller || !licence.body.offer.equals(signedId(offer))) {
    throw new BadDisputeError('the licence is not the seller\'s licence for this offer')
  }
  if (licence.body.device !== context.device) throw new BadDisputeError('the licence is bound to another device than the one disputing')
  return licence
}

/** What each kind of dispute must carry, and must not */
function checkShape (dispute: Dispute, bound: boolean, t: number): void {
  const { reason, part } = dispute
  const has = { openings: dispute.openings.length > 0, kDev: dispute.kDev != null, kDevWrap: dispute.kDevWrap != null }
  let expected: { openings: boolean, kDev: boolean, kDevWrap: boolean }
  let what: string
  if (reason === 'chunk') {
    if (part != null) throw new BadDisputeError('a chunk dispute names no part: it opens what rebuilds the key')
    expected = { openings: true, kDev: bound, kDevWrap: false }
    what = bound ? 'a chunk dispute over a licence opens the shares and K_dev' : 'a chunk dispute over an open offer opens the shares'
  } else {
    if (dispute.chunk != null) throw new BadDisputeError('a key dispute carries no chunk')
    if (!bound) {
      if (part != null) throw new BadDisputeError('a key dispute over an open offer names no part')
      expected = { openings: true, kDev: false, kDevWrap: false }
      what = 'a key dispute over an open offer opens the shares only'
    } else if (part == null) {
      throw new BadDisputeError('a key dispute over a licence names the part it opens (escrow, device or both)')
    } else {
      expected = { openings: part !== 'device', kDev: part === 'both', kDevWrap: part === 'device' }
      what = {
        escrow: 'part escrow opens the shares only',
        device: 'part device opens the K_dev wrap only',
        both: 'part both opens the shares and K_dev'
      }[part]
    }
  }
  if (has.openings !== expected.openings || has.kDev !== expected.kDev || has.kDevWrap !== expected.kDevWrap) throw new BadDisputeError(what)
  if (expected.openings && dispute.openings.length < t) throw new BadDisputeError(`a ${reason} dispute opens at least ${t} shares`)
  if (new Set(dispute.openings.map(o => o.j)).size !== dispute.openings.length) throw new BadDisputeError('a share is opened twice')
}

/**
 * Checks each opening against its share (x^e_T = c: anyone can) and rebuilds the secret the
 * shares carry (K for an open offer, K_esc for a licence); or the verdict when they fail.
 */
function openShares (dispute: Dispute, offer: Signed<Offer>, licence: Signed<Licence> | undefined, manifest: ContentManifest): { secret: Uint8Array } | { verdict: Verdict } {
  const terms = offer.body.terms
  const eT = priceExponent(termsCid(terms).bytes)
  const wrapped: WrappedShareRef[] = licence?.body.shares ?? offer.body.shares
  const salt = licence?.body.salt ?? offer.body.salt
  const shares: Uint8Array[] = []
  try {
    for (const opening of dispute.openings) {
      const share = wrapped[opening.j - 1]
      const escrow = terms.escrows[opening.j - 1]
      if (share == null || escrow == null) throw new BadDisputeError(`the offer has no share ${opening.j}`)
      const n = os2ip(escrow.n)
      const x = os2ip(opening.x)
      if (x < 2n || x > n - 2n || rawPublic(x, eT, n) !== os2ip(share.c)) {
        return { verdict: refuse(`opening ${opening.j} is not the secret of share ${opening.j}`) }
      }
      try {
        shares.push(unwrapShare({ x, n, j: opening.j, dem: share.dem, contentSalt: manifest.salt, offerSalt: salt }))
      } catch {
        return { verdict: refund(`share ${opening.j} does not unwrap under its own secret`) }
      }
    }
    try {
      return { secret: combineShares(shares, terms.t) }
    } catch {
      return { verdict: refund('the shares do not combine to a key') }
    }
  } finally {
    for (const share of shares) share.fill(0)
  }
}

/**
 * Part 'device': the K_dev wrap w of the licence, opened as m = w^d under the device's
 * certified encryption key. Refunds iff w is no ciphertext for that key, or m (which must
 * satisfy m^e = w) does not decode to a K_dev matching kcDev.
 */
async function judgeDeviceWrap (dispute: Dispute, licence: Signed<Licence>, context: JudgeContext): Promise<Verdict> {
  const opening = dispute.kDevWrap!
  const certificate = await context.verifyEncryptionCertificate(opening.certificate)
  if (certificate.subjectCommonName !== context.device) throw new BadDisputeError('the encryption certificate is not the disputing device\'s')
  const w = licence.body.kDev
  let ciphertext: boolean
  try {
    ciphertext = isDeviceWrapCiphertext(w, certificate.publicKey)
  } catch {
    throw new BadDisputeError('the encryption certificate holds no usable device key')
  }
  if (!ciphertext) return refund('the licence\'s K_dev wrap is not a ciphertext for the device\'s certified key')
  if (opening.m == null) throw new BadDisputeError('part device carries m, what the K_dev wrap decrypts to')
  if (!checkDeviceWrapOpening(w, opening.m, certificate.publicKey)) return refuse('m is not what the licence\'s K_dev wrap decrypts to (m^e ≠ w)')
  const kDev = deviceKeyFromOpening(opening.m)
  if (kDev == null) return refund('the licence\'s K_dev wrap does not decode (RSA-OAEP-SHA256) to a 32-byte K_dev')
  try {
    if (!verifyDevicePartCommitment(kDev, licence.body.kcDev)) return refund('the licence\'s K_dev wrap does not hold its committed K_dev')
    return refuse('the licence\'s K_dev wrap holds its committed K_dev')
  } finally {
    kDev.fill(0)
  }
}

/** A chunk that matches the manifest and fails under the committed key is the seller's fault */
function judgeChunk (dispute: Dispute, manifest: ContentManifest, key: Uint8Array): Verdict {
  const { chunk } = dispute
  if (chunk == null) throw new BadDisputeError('a chunk dispute carries the chunk')
  if (!verifyChunk(manifest, chunk.index, chunk.data)) return refuse(`chunk ${chunk.index} is not the manifest's chunk`)
  try {
    openVerifiedChunk(manifest, key, chunk.index, chunk.data).fill(0)
  } catch (err) {
    if (err instanceof ChunkAuthError) return refund(`chunk ${chunk.index} fails under the committed key`)
    throw err
  }
  return refuse(`chunk ${chunk.index} decrypts under the committed key`)
}
