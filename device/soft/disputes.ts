// Disputes the device signs over a purchase: a key dispute opens only the part of the
// key at fault (so a good K stays hidden), a chunk dispute only for a chunk that is the
// manifest's and fails under the key. A disputed purchase is refunded: its licence goes.
import { createPublicKey } from 'node:crypto'
import { ChunkAuthError, ChunkHashError, isDeviceWrapCiphertext, openDeviceWrap, openVerifiedChunk, unwrapDeviceKey, verifyChunk } from '../crypto/index.ts'
import { BadDeviceRequestError, ChunkDecryptsError, KeyCommitmentError, NotEnrolledError, PurchaseStateError } from '../errors.ts'
import { encodeObject } from '../objects/codec.ts'
import { signWithDeviceKey, signedId } from '../objects/signed.ts'
import { rebuildKey } from './key-rebuild.ts'
import { acceptedOf } from './purchase-records.ts'
import { CERT_FILES } from './session.ts'
import type { PurchaseState } from '../interface.ts'
import type { DeviceWrapOpening, DisputePart, Opening } from '../objects/market.ts'
import type { DeviceSecrets } from '../store/keystore.ts'
import type { OpenPurchase, PurchaseRecords } from './purchase-records.ts'
import type { DeviceSession } from './session.ts'

export interface DisputeArgs {
  purchase: string
  reason: 'key' | 'chunk'
  chunk?: { index: number, data: Uint8Array }
}

export class Disputes {
  private readonly session: DeviceSession
  private readonly records: PurchaseRecords

  constructor (session: DeviceSession, records: PurchaseRecords) {
    this.session = session
    this.records = records
  }

  async dispute (args: DisputeArgs): Promise<{ dispute: Uint8Array }> {
    const secrets = this.session.unlocked()
    const p = await this.records.load(args.purchase)
    checkDisputable(p, args.reason)
    const body: Record<string, unknown> = {
      v: 1,
      purchase: p.record.purchase,
      offer: signedId(p.offer),
      reason: args.reason,
      openings: [],
      manifest: p.manifest,
      at: this.session.now()
    }
    if (p.licence != null) body.licence = p.licence
    let kDev: Uint8Array | undefined
    try {
      kDev = args.reason === 'chunk'
        ? this.openChunkDispute(secrets, p, body, args.chunk)
        : await this.openKeyDispute(secrets, p, body)
      const dispute = encodeObject(signWithDeviceKey('dispute', body, secrets.signingKey, await this.session.signingCertificate()))
      await this.markDisputed(secrets, p)
      return { dispute }
    } finally {
      kDev?.fill(0)
    }
  }

  /**
   * The escrows decrypt the chunk, so this discloses K: only for a chunk that is the
   * manifest's and fails under the key. Returns K_dev put in the body (the caller wipes it).
   */
  private openChunkDispute (secrets: DeviceSecrets, p: OpenPurchase, body: Record<string, unknown>, chunk: DisputeArgs['chunk']): Uint8Array | undefined {
    if (chunk == null) throw new BadDeviceRequestError('a chunk dispute needs the chunk')
    this.checkDisputedChunk(secrets, p, chunk)
    body.openings = openingsOf(p)
    let kDev: Uint8Array | undefined
    if (p.licence != null) body.kDev = kDev = unwrapDeviceKey(p.licence.body.kDev, secrets.encryptionKey)
    body.chunk = chunk
    return kDev
  }

  /** Opens the shares, and over a licence only the part at fault; returns K_dev if opened */
  private async openKeyDispute (secrets: DeviceSecrets, p: OpenPurchase, body: Record<string, unknown>): Promise<Uint8Array | undefined> {
    if (p.licence == null) {
      body.openings = openingsOf(p)
      return undefined
    }
    const part: DisputePart = p.record.fault ?? 'escrow'
    body.part = part
    if (part !== 'device') body.openings = openingsOf(p)
    if (part === 'device') body.kDevWrap = await this.deviceWrapOpening(secrets, p.licence.body.kDev)
    if (part !== 'both') return undefined
    const kDev = unwrapDeviceKey(p.licence.body.kDev, secrets.encryptionKey)
    body.kDev = kDev
    return kDev
  }

  private async markDisputed (secrets: DeviceSecrets, p: OpenPurchase): Promise<void> {
    if (p.record.state === 'disputed') return
    p.record.state = 'disputed'
    await this.records.save(secrets, p)
    // a disputed purchase is refunded, so its licence goes
    await this.session.store.deleteRecord('licence', p.offer.body.terms.content.toString())
  }

  /** Throws unless the chunk is the manifest's and fails to decrypt under the purchase's key */
  private checkDisputedChunk (secrets: DeviceSecrets, p: OpenPurchase, chunk: { index: number, data: Uint8Array }): void {
    if (!verifyChunk(p.manifest, chunk.index, chunk.data)) {
      throw new ChunkHashError(`chunk ${chunk.index} is not the manifest's: a provider's fault, not the seller's (fetch it again)`)
    }
    const { key, failure } = rebuildKey(secrets, p)
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
    const certificate = await this.session.store.readPublic(CERT_FILES.encryption)
    if (certificate == null) throw new NotEnrolledError()
    const opening: DeviceWrapOpening = { certificate }
    // a wrap that is no ciphertext for this key is shown to be so by the certificate alone
    if (isDeviceWrapCiphertext(w, createPublicKey(secrets.encryptionKey))) opening.m = openDeviceWrap(w, secrets.encryptionKey)
    return opening
  }
}

/**
 * A key dispute over a good purchase is the buyer's to make: it is refused, and over a
 * licence it opens only K_esc, so it discloses nothing of K
 */
function checkDisputable (p: OpenPurchase, reason: DisputeArgs['reason']): void {
  const allowed: PurchaseState[] = reason === 'key' ? ['failed', 'complete', 'disputed'] : ['complete', 'disputed']
  if (!allowed.includes(p.record.state)) throw new PurchaseStateError(`a ${reason} dispute needs a ${allowed.slice(0, -1).join(' or ')} purchase; this one is ${p.record.state}`)
  if (acceptedOf(p.record).length < p.offer.body.terms.t) throw new PurchaseStateError('the purchase holds too few checked shares to dispute')
}

function openingsOf (p: OpenPurchase): Opening[] {
  return acceptedOf(p.record).map(s => ({ j: s.j, x: s.x! }))
}
