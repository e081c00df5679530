// Buying a purchase's t shares in lanes, around dead escrows and refunded lying ones.
import { peerIdFromString } from '@libp2p/peer-id'
import { bytesEqual } from '../../device/crypto/index.ts'
import { BadCertificateError } from '../../device/pki/errors.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { requestSettle } from '../../protocols/escrow/settle.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { EscrowsUnavailableError, codeOf, reasonOf } from './errors.ts'
import { withRedial } from './redial.ts'
import type { BuyProgress, BuyResult, BuyerInit, EscrowOutcome, ShareTimings } from './types.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { EscrowState } from '../control/progress.ts'

export const ESCROW_TIMEOUT_MS = 15_000

/** The code of an escrow's refusal when it gave no code of its own */
const REFUSAL_CODES = {
  'fraud-refunded': 'ERR_FRAUD_REFUNDED',
  'fraud-unrefunded': 'ERR_FRAUD_UNREFUNDED',
  unavailable: 'ERR_ESCROW_UNAVAILABLE'
} as const

interface ShareOutcome { outcome: EscrowOutcome, accepted?: number, reason?: string }

interface Candidate { j: number, peer: string }

export interface EscrowSharesInit {
  buyer: BuyerInit
  offer: Signed<Offer>
  progress: (p: BuyProgress) => void
  signal: AbortSignal
}

/** The escrow of share j is the one the offer names, with the key the share was wrapped for, certified by the agency */
export async function checkEscrow (buyer: BuyerInit, offer: Signed<Offer>, j: number, signal?: AbortSignal): Promise<void> {
  const escrow = offer.body.terms.escrows[j - 1]!
  // the agency's list is fetched again here when the one held is stale (after a restart):
  // a failure to reach either the escrow or the agency is tried again within the time
  await withRedial(async s => {
    const info = await requestEscrowInfo({ connectionManager: buyer.streams }, peerIdFromString(escrow.peer), { signal: s })
    if (info.peer !== escrow.peer || !bytesEqual(info.n, escrow.n)) throw new BadCertificateError('it is not the escrow the offer names')
    await buyer.market.trust.verifyEscrow(info, { signal: s })
  }, { signal: timeoutSignal(ESCROW_TIMEOUT_MS, signal), log: buyer.log, what: `escrow ${j}` })
}

/** One lane per missing share; an escrow that fails hands its place to the next in the offer's order */
export class EscrowShares {
  private readonly init: EscrowSharesInit
  private began = 0
  private have = 0

  constructor (init: EscrowSharesInit) {
    this.init = init
  }

  /**
   * Buys shares until t passed the device's check. The first t − have escrows of the
   * offer's order are asked at once; each one that is dead or answers wrongly (refunded
   * by its fraud proof) hands its place to the next escrow in that order.
   */
  async buy (purchase: string, checks: Map<number, Promise<void>>, steps: ShareTimings[], reserved: number[], refused: Set<number>): Promise<BuyResult['escrows']> {
    const device = this.init.buyer.device()
    this.began = performance.now()
    const { terms } = this.init.offer.body
    const state = await device.purchase({ purchase })
    const outcomes: BuyResult['escrows'] = state.accepted.map(j => ({ j, peer: terms.escrows[j - 1]!.peer, outcome: 'accepted' }))
    this.have = state.accepted.length
    // those holding the price first, then the others in the seller's order (its preferred
    // escrows first), asked without a reservation only if a reserved one fails; never one
    // that refused to reserve
    const candidates = [...reserved, ...terms.escrows.map((_, i) => i + 1).filter(j => !reserved.includes(j))]
      .filter(j => !state.accepted.includes(j) && !state.faulty.includes(j) && !refused.has(j))
      .map(j => ({ j, peer: terms.escrows[j - 1]!.peer }))
    const prepared = this.prepareFirst(purchase, candidates.slice(0, Math.max(0, terms.t - this.have)).map(c => c.j))
    // one lane per missing share: a lane ends with its share bought, or when no escrow is left
    const lane = async (): Promise<void> => {
      for (let next = candidates.shift(); next != null; next = candidates.shift()) {
        const outcome = await this.askEscrow(purchase, next, checks, steps, prepared)
        outcomes.push({ j: next.j, peer: next.peer, outcome: outcome.outcome })
        if (outcome.outcome === 'accepted') return
      }
    }
    await Promise.all(Array.from({ length: Math.max(0, terms.t - this.have) }, lane))
    if (this.have < terms.t) throw new EscrowsUnavailableError(`${this.have} of ${terms.t} escrows answered; run buy again to retry (the purchase stays open, nothing is paid twice)`)
    outcomes.sort((a, b) => a.j - b.j)
    return outcomes
  }

  /** The device signs the first requests in one go (one sealed write) while the escrows are checked */
  private prepareFirst (purchase: string, first: number[]): (j: number) => Promise<Uint8Array | undefined> {
    const batch = first.length > 1
      ? this.init.buyer.device().requestShares({ purchase, js: first }).then(r => r.requests, (err: unknown) => { this.init.buyer.log('batched requests failed: %s', reasonOf(err)) })
      : Promise.resolve(undefined)
    return async j => {
      const i = first.indexOf(j)
      return i < 0 ? undefined : (await batch)?.[i]
    }
  }

  /** One escrow in a lane: its share bought, with each step timed and told */
  private async askEscrow (purchase: string, next: Candidate, checks: Map<number, Promise<void>>, steps: ShareTimings[], prepared: (j: number) => Promise<Uint8Array | undefined>): Promise<ShareOutcome> {
    const { offer, signal, progress, buyer } = this.init
    signal.throwIfAborted()
    const step: ShareTimings = { j: next.j }
    steps.push(step)
    const { j, peer } = next
    const checked = checks.get(j) ?? checkEscrow(buyer, offer, j, signal)
    const tell = (state: EscrowState, code?: string): void => {
      progress({ phase: 'escrow', j, peer, state, ...(code != null ? { code } : {}), have: this.have, need: offer.body.terms.t })
    }
    const outcome = await this.buyShare(purchase, j, checked, prepared(j), (name) => {
      step[name] = performance.now() - this.began
      if (name === 'requested') tell('asked')
      else if (name === 'answered') tell('held')
    })
    if (outcome.accepted != null) this.have = Math.max(this.have, outcome.accepted)
    if (outcome.outcome === 'accepted') tell('answered')
    else tell('refused', outcome.reason ?? REFUSAL_CODES[outcome.outcome])
    return outcome
  }

  /** One escrow's share: its identity checked, the device's request, the answer judged by the device */
  private async buyShare (purchase: string, j: number, checked: Promise<void>, prepared: Promise<Uint8Array | undefined>, mark: (step: Exclude<keyof ShareTimings, 'j'>) => void): Promise<ShareOutcome> {
    const { buyer, offer, signal } = this.init
    const device = buyer.device()
    const escrow = offer.body.terms.escrows[j - 1]!
    const target = peerIdFromString(escrow.peer)
    try {
      await checked
      mark('checked')
      const request = (await prepared) ?? (await device.requestShare({ purchase, j })).request
      mark('requested')
      // the same request again is answered from the escrow's hold, never charged twice
      const answer = await withRedial(async s => requestUnblind({ connectionManager: buyer.streams }, target, request, { signal: s }), { signal: timeoutSignal(ESCROW_TIMEOUT_MS, signal), log: buyer.log, what: `escrow ${j}` })
      mark('answered')
      const verdict = await device.acceptAnswer({ purchase, j, answer })
      mark('judged')
      if (verdict.accepted) return { outcome: 'accepted', accepted: verdict.have }
      return await this.claimRefund(escrow.peer, verdict.fraud)
    } catch (err: unknown) {
      if (signal.aborted) throw err
      buyer.log('escrow %d (%s) unavailable: %s', j, escrow.peer, reasonOf(err))
      return { outcome: 'unavailable', reason: codeOf(err) }
    }
  }

  /** The escrow's own signed answer proves the fault: claim the refund, buy the share elsewhere */
  private async claimRefund (peer: string, fraud: Uint8Array): Promise<ShareOutcome> {
    const { buyer, signal } = this.init
    try {
      const settled = await requestSettle({ connectionManager: buyer.streams }, peerIdFromString(peer), fraud, { signal: timeoutSignal(ESCROW_TIMEOUT_MS, signal) })
      if (settled.state === 'refunded') return { outcome: 'fraud-refunded' }
    } catch (err: unknown) {
      buyer.log('fraud refund from %s failed: %s', peer, reasonOf(err))
    }
    return { outcome: 'fraud-unrefunded' }
  }
}
