// Playing bought content through the device: behind a download, or later from the sealed licence.
import { LicenceExpiredError } from '../../device/errors.ts'
import { UnknownContentError } from '../../protocols/market/content.ts'
import { OfferIdGivenError, messageOf, reasonOf } from './errors.ts'
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
   * before it are on disk. The device is told of progress one message at a time, with
   * the latest count, so a fast download does not queue a message per chunk.
   */
  async follow (cid: string, output: string, order: StoredOrder, onProgress: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    const { market } = this.init
    const device = this.init.device()
    const manifest = (await market.content.manifestBytes(cid))!
    const total = (await market.content.manifest(cid))!.size
    let told = order.contiguous
    let telling = false
    const tell = async (): Promise<void> => {
      if (telling) return
      telling = true
      try {
        while (order.contiguous > told) {
          told = order.contiguous
          await device.playFeed({ content: cid, available: told })
        }
      } catch (err: unknown) {
        this.init.log('telling the device of chunk %d failed: %s', told, reasonOf(err))
      } finally {
        telling = false
      }
    }
    const playing = device.play({ content: cid, manifest, input: market.content.dataFile(cid), output, available: told }, p => { onProgress({ phase: 'play', bytes: p.bytes, total }) })
    order.onAdvance = () => { void tell() }
    try {
      return await playing
    } finally {
      order.onAdvance = undefined
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
