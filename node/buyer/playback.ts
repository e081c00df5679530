// Playing bought content through the device: behind a download, or later from the sealed licence.
import { LicenceExpiredError } from '../../device/errors.ts'
import { UnknownContentError } from '../../protocols/market/content.ts'
import { OfferIdGivenError, messageOf } from './errors.ts'
import { PlayFeed } from './play-feed.ts'
import type { LicenceRenewal } from './renewal.ts'
import type { StoredOrder } from './stored-order.ts'
import type { BuyerInit, PlayProgress } from './types.ts'
import type { KeyfairError } from '../../protocols/errors.ts'

export class Playback {
  private readonly init: BuyerInit
  private readonly renewal: LicenceRenewal

  constructor (init: BuyerInit, renewal: LicenceRenewal) {
    this.init = init
    this.renewal = renewal
  }

  /** Plays a downloaded content from its licence to `output` */
  async play (content: string, output: string, onProgress?: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const { market } = this.init
    const manifest = await market.content.manifestBytes(content)
    if (manifest == null || !(await market.content.isComplete(content))) throw await this.unknownContent(content)
    const total = (await market.content.manifest(content))!.size
    await this.renewIfExpired(content)
    return this.init.device().play({ content, manifest, input: market.content.dataFile(content), output }, p => onProgress?.({ phase: 'play', bytes: p.bytes, total }))
  }

  /**
   * Plays behind the download: the device reads each chunk once it and every chunk
   * before it are on disk, told of them by a `PlayFeed`
   */
  async follow (cid: string, output: string, order: StoredOrder, onProgress: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const { market } = this.init
    const device = this.init.device()
    const manifest = (await market.content.manifestBytes(cid))!
    const { size: total, chunkSize } = (await market.content.manifest(cid))!
    const feed = new PlayFeed({ order, chunkSize, log: this.init.log, tell: async available => device.playFeed({ content: cid, available }) })
    const playing = device.play({ content: cid, manifest, input: market.content.dataFile(cid), output, available: feed.available }, p => { onProgress({ phase: 'play', bytes: p.bytes, total }) })
    feed.start()
    try {
      return await playing
    } finally {
      feed.stop()
    }
  }

  /** Ends a play that waits for chunks that will not come; its partial output is removed */
  async stop (cid: string): Promise<void> {
    await this.init.device().playFeed({ content: cid, stopped: true }).catch(() => {})
  }

  /** Why `id` cannot be played: it names an offer (whose content id is given), or nothing here */
  private async unknownContent (id: string): Promise<KeyfairError> {
    const offer = await this.init.market.knownOffer(id).catch(() => undefined)
    if (offer != null) {
      const content = offer.body.terms.content.toString()
      return new OfferIdGivenError(`${id} is an offer id; play takes the content id: keyfair play ${content}`)
    }
    return new UnknownContentError(id)
  }

  /**
   * A licence past its offline lifetime is renewed before it plays, when an escrow can
   * be reached; otherwise the device's own refusal, with why renewing failed
   */
  private async renewIfExpired (content: string): Promise<void> {
    const licence = (await this.init.device().library()).find(l => l.content === content)
    if (licence == null || Date.now() <= licence.playUntil) return
    try {
      await this.renewal.renew(content, { signal: AbortSignal.timeout(30_000) })
    } catch (err: unknown) {
      throw new LicenceExpiredError(`the licence played offline until ${new Date(licence.playUntil).toISOString()} and could not be renewed: ${messageOf(err)}`)
    }
  }
}
