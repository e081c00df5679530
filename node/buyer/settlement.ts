// Ending a purchase: confirm or dispute carried to every escrow that answered.
import { peerIdFromString } from '@libp2p/peer-id'
import { UnknownPurchaseError } from '../../device/errors.ts'
import { requestSettle } from '../../protocols/escrow/settle.ts'
import { BadRequestError } from '../errors.ts'
import { codeOf, messageOf } from './errors.ts'
import { ESCROW_TIMEOUT_MS } from './escrow-shares.ts'
import { withRedial } from './redial.ts'
import type { BuyerInit, SettlementResult } from './types.ts'
import type { PurchaseInfo } from '../../device/interface.ts'
import type { DeviceClient } from '../device/client.ts'

export class Settlement {
  private readonly init: BuyerInit

  constructor (init: BuyerInit) {
    this.init = init
  }

  /** Confirms a purchase: the device's receipt to every escrow that answered */
  async confirm (purchase: string): Promise<SettlementResult> {
    const { receipt } = await this.init.device().receipt({ purchase })
    return this.settle(purchase, receipt)
  }

  /** Disputes a purchase: the device opens its shares to every escrow that answered */
  async dispute (purchase: string, chunk?: { index: number }): Promise<SettlementResult> {
    const info = await this.purchaseInfo(purchase)
    const reason = info.state === 'failed' ? 'key' : 'chunk'
    const args: Parameters<DeviceClient['dispute']>[0] = { purchase, reason }
    if (reason === 'chunk') {
      if (chunk == null) throw new BadRequestError('the key matched its commitment: name the chunk that fails to play (--chunk N)')
      args.chunk = { index: chunk.index, data: await this.init.market.content.readChunk(info.content, chunk.index) }
    }
    const { dispute } = await this.init.device().dispute(args)
    return this.settle(purchase, dispute)
  }

  private async settle (purchase: string, settlement: Uint8Array): Promise<SettlementResult> {
    const info = await this.purchaseInfo(purchase)
    const offer = await this.init.market.knownOffer(info.offer)
    const escrows: SettlementResult['escrows'] = []
    for (const j of info.accepted) {
      const peer = offer.body.terms.escrows[j - 1]!.peer
      try {
        const answer = await withRedial(async s => requestSettle({ connectionManager: this.init.streams }, peerIdFromString(peer), settlement, { signal: s }), { signal: AbortSignal.timeout(ESCROW_TIMEOUT_MS), log: this.init.log, what: `escrow ${j}` })
        escrows.push({ j, peer, state: answer.state, refused: answer.refused, reason: answer.reason })
      } catch (err: unknown) {
        escrows.push({ j, peer, error: `${codeOf(err) ?? 'ERR'}: ${messageOf(err)}` })
      }
    }
    return { purchase, escrows, price: offer.body.terms.price, currency: offer.body.terms.currency }
  }

  /** The device's record of a purchase, or ERR_UNKNOWN_PURCHASE */
  private async purchaseInfo (purchase: string): Promise<PurchaseInfo> {
    try {
      return await this.init.device().purchase({ purchase })
    } catch (err: unknown) {
      if (codeOf(err) === UnknownPurchaseError.code) throw new UnknownPurchaseError(`no purchase ${purchase} on this device`)
      throw err
    }
  }
}
