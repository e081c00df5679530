// The licences on the device in use: listed, renewed with an escrow's statement that the
// device is unrevoked, and played into a sink (plaintext never crosses the interface).
import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { CID } from 'multiformats/cid'
import { ChunkFeed } from '../chunk-feed.ts'
import { decryptFile } from '../content-file.ts'
import { bytesEqual } from '../crypto/index.ts'
import { BadDeviceRequestError, BadRenewalError, LicenceExpiredError, PlayBusyError } from '../errors.ts'
import { decodeObject, encodeObject } from '../objects/codec.ts'
import { LIMITS, contentIdOf, parseManifest, parseSignedRenewal } from '../objects/market.ts'
import { signWithDeviceKey, signedId, verifyPeerSigned } from '../objects/signed.ts'
import { publicInfoOf, readLicence, sealLicence } from './licence-records.ts'
import type { LicenceInfo, PlayProgress, RenewalRequestInfo } from '../interface.ts'
import type { Renewal } from '../objects/market.ts'
import type { Signed } from '../objects/signed.ts'
import type { DeviceSecrets } from '../store/keystore.ts'
import type { LicenceRecord } from './licence-records.ts'
import type { DeviceSession } from './session.ts'

/** A renewal request out, waiting for an escrow's statement (memory only: a lock drops it) */
interface PendingRenewal {
  request: string
  nonce: Uint8Array
}

export interface PlayArgs {
  content: string
  manifest: Uint8Array
  input: string
  output: string
  available?: number
}

export class Player {
  private readonly session: DeviceSession
  private readonly log = logger('keyfair:device:player')
  /** plays following a download still under way, by content */
  private readonly feeds = new Map<string, ChunkFeed>()
  /** renewal requests out, by content id */
  private readonly renewals = new Map<string, PendingRenewal>()

  constructor (session: DeviceSession) {
    this.session = session
    session.onForget(() => { this.renewals.clear() })
  }

  async library (): Promise<LicenceInfo[]> {
    const secrets = this.session.unlocked()
    const out: LicenceInfo[] = []
    for (const id of await this.session.store.listRecords('licence')) {
      try {
        const licence = await this.licenceOf(secrets, id)
        licence.key.fill(0)
        out.push(publicInfoOf(licence))
      } catch (err: any) {
        this.log.error('skipping licence record %s: %s', id, err.code ?? err.name)
      }
    }
    return out
  }

  async renewalRequest (args: { content: string }): Promise<RenewalRequestInfo> {
    const secrets = this.session.unlocked()
    const licence = await this.licenceOf(secrets, args.content)
    licence.key.fill(0)
    const nonce = new Uint8Array(randomBytes(LIMITS.renewalNonce))
    const body = { v: 1, offer: CID.parse(licence.offer), nonce, at: this.session.now() }
    const signed = signWithDeviceKey('renewal-request', body, secrets.signingKey, await this.session.signingCertificate())
    this.renewals.set(args.content, { request: signedId(signed).toString(), nonce })
    return { request: encodeObject(signed), offer: licence.offer, escrows: licence.escrows }
  }

  async renew (args: { content: string, renewal: Uint8Array }): Promise<LicenceInfo> {
    const secrets = this.session.unlocked()
    const pending = this.renewals.get(args.content)
    if (pending == null) throw new BadRenewalError('no renewal request of this licence is out: ask for one first')
    const licence = await this.licenceOf(secrets, args.content)
    try {
      await this.checkRenewal(secrets, licence, pending, args.renewal)
      this.renewals.delete(args.content)
      const now = this.session.now()
      const renewed: LicenceRecord = { ...licence, playUntil: now + licence.licenceTtl, renewedAt: now }
      await sealLicence(this.session.store, secrets, renewed)
      this.log('licence of %s renewed until %s', args.content, new Date(renewed.playUntil).toISOString())
      return publicInfoOf(renewed)
    } finally {
      licence.key.fill(0)
    }
  }

  /**
   * With `available` below the chunk count, the play follows a download still writing
   * `input` in order: `playFeed` tells it of each further chunk on disk.
   */
  async play (args: PlayArgs, onProgress?: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const secrets = this.session.unlocked()
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
      const licence = await this.licenceOf(secrets, args.content)
      try {
        this.checkPlayable(licence, args.content)
        const bytes = await decryptFile(args.input, args.output, manifest, licence.key, { onProgress, feed })
        return { bytes }
      } finally {
        licence.key.fill(0)
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

  private async licenceOf (secrets: DeviceSecrets, content: string): Promise<LicenceRecord> {
    return await readLicence(this.session.store, secrets, content)
  }

  /** Throws unless the renewal answers the pending request, for this device, from an escrow of the offer */
  private async checkRenewal (secrets: DeviceSecrets, licence: LicenceRecord, pending: PendingRenewal, bytes: Uint8Array): Promise<void> {
    const renewal: Signed<Renewal> = parseSignedRenewal(decodeObject(bytes))
    const escrow = await verifyPeerSigned(renewal, 'renewal')
    const { body } = renewal
    // only an escrow of the offer may vouch, and only for the request this device made
    if (!licence.escrows.includes(escrow)) throw new BadRenewalError('the renewal is not signed by an escrow of the offer')
    if (body.request.toString() !== pending.request || !bytesEqual(body.nonce, pending.nonce)) throw new BadRenewalError()
    if (body.device !== secrets.deviceId || body.offer.toString() !== licence.offer) throw new BadRenewalError('the renewal names another device or offer')
  }

  private checkPlayable (licence: LicenceRecord, content: string): void {
    // a software device trusts the machine's clock: see the docs on what that allows
    if (this.session.now() > licence.playUntil) {
      throw new LicenceExpiredError(`the licence played offline until ${new Date(licence.playUntil).toISOString()}: renew it online (keyfair renew ${content})`)
    }
  }
}
