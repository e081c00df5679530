// Reserving before paying (docs/protocol.md, escrow/reserve): before the device sends any blinded request and
// before any chunk is downloaded, t escrows of the offer each reserve the price from the
// buyer's account there. Only when t hold it does the device ask them; when fewer than t
// can, the ones that did are cancelled at once and the buy fails naming every escrow and
// why, so a buyer never pays part of a purchase that cannot complete.
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeObject } from '../../device/objects/codec.ts'
import { requestCancelReservation, requestReserve } from '../../protocols/escrow/reserve.ts'
import { KeyfairError, RemoteError } from '../../protocols/errors.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { formatMoney } from '../format.ts'
import { withRedial } from './redial.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { BuyProgress } from '../control/progress.ts'
import type { Logger } from '@libp2p/interface'

const RESERVE_TIMEOUT_MS = 15_000
const CANCEL_TIMEOUT_MS = 5_000

/** Why one escrow did not hold the price: its own refusal code, or that it could not be reached */
export interface EscrowRefusal {
  j: number
  peer: string
  code: string
  message: string
  /** with ERR_INSUFFICIENT_FUNDS: the buyer's balance there and the price, in minor units */
  balance?: number
  amount?: number
}

/** Failures a later try may not meet: the escrow, its ledger or its agency out of reach for now */
const PASSING = new Set(['ERR_ESCROW_UNREACHABLE', 'ERR_ESCROW_TIMEOUT', 'ERR_LEDGER_UNAVAILABLE', 'ERR_CRL_STALE', 'ERR_AGENCY_UNREACHABLE', 'ERR_ESCROW_NOT_READY'])

/** Fewer than t escrows of the offer hold the price: nothing was answered, nothing paid */
export class PurchaseRefusedError extends KeyfairError {
  static readonly code = 'ERR_PURCHASE_REFUSED'
  readonly escrows: EscrowRefusal[]
  /** whether running the buy again may succeed (an escrow was out of reach, not refusing) */
  readonly retryable: boolean

  constructor (escrows: EscrowRefusal[], held: number, terms: { t: number, price: number, currency: string }) {
    const retryable = escrows.some(e => PASSING.has(e.code))
    const lines = escrows.map(e => `  escrow ${e.j} ${e.peer}: ${describe(e, terms.currency)}`)
    const advice = [
      ...(escrows.some(e => e.code === 'ERR_INSUFFICIENT_FUNDS') ? ['deposit at an escrow short of funds (its operator credits your account), then buy again'] : []),
      ...(escrows.some(e => e.code === 'ERR_CERT_REVOKED') ? ['this device is revoked: enroll a new sealed device with the agency'] : []),
      ...(retryable ? ['run buy again to retry: an escrow was out of reach'] : [])
    ]
    super([
      `purchase refused: ${held} of the ${terms.t} escrows needed hold the price (${formatMoney(terms.price, terms.currency)} each, ${formatMoney(terms.price * terms.t, terms.currency)} in all); no escrow answered, nothing was paid`,
      ...lines,
      ...advice
    ].join('\n'), PurchaseRefusedError.code)
    this.escrows = escrows
    this.retryable = retryable
    this.details = { escrows, held, need: terms.t, price: terms.price, currency: terms.currency, retryable }
  }
}

function describe (e: EscrowRefusal, currency: string): string {
  if (e.code === 'ERR_INSUFFICIENT_FUNDS' && e.balance != null && e.amount != null) {
    return `insufficient funds: your balance there is ${formatMoney(e.balance, currency)}, ${formatMoney(e.amount, currency)} needed (${e.code})`
  }
  if (e.code === 'ERR_CERT_REVOKED') return `refused: this device's certificate is revoked (${e.code})`
  if (e.code === 'ERR_ESCROW_UNREACHABLE') return `unreachable: ${e.message} (${e.code})`
  if (e.code === 'ERR_ESCROW_TIMEOUT') return `no answer in time (${e.code})`
  return `${e.message} (${e.code})`
}

/** One escrow's failure as a refusal: the code it answered with, else unreachable or timed out */
export function refusalOf (j: number, peer: string, err: any): EscrowRefusal {
  if (err instanceof RemoteError || (err instanceof KeyfairError && err.code === 'ERR_BAD_CERT')) {
    const refusal: EscrowRefusal = { j, peer, code: err.code, message: err.message }
    const { balance, amount } = err.details ?? {}
    if (Number.isSafeInteger(balance) && Number.isSafeInteger(amount)) Object.assign(refusal, { balance, amount })
    return refusal
  }
  const timedOut = err?.name === 'TimeoutError' || err?.name === 'AbortError' || err?.code === 'ERR_READ_TIMEOUT' || err?.code === 'ABORT_ERR'
  const why = String(err?.code ?? err?.name ?? 'error') + (typeof err?.message === 'string' ? `: ${err.message as string}` : '')
  return timedOut
    ? { j, peer, code: 'ERR_ESCROW_TIMEOUT', message: why.slice(0, 200) }
    : { j, peer, code: 'ERR_ESCROW_UNREACHABLE', message: why.slice(0, 200) }
}

export interface ReserveInit {
  streams: StreamOpener
  log: Logger
  offer: Signed<Offer>
  purchase: string
  /** the device's signing certificate (PEM) */
  device: string
  /** escrows (1-based places in the offer) to try, in the order to try them */
  candidates: number[]
  /** how many must hold the price */
  need: number
  /** the escrow's identity checked against the offer and the agency, begun at most once per escrow */
  check: (j: number) => Promise<void>
  progress: (p: BuyProgress) => void
  signal: AbortSignal
}

export interface Reserved {
  /** escrows holding the price, in the order they answered */
  held: number[]
  /** escrows that refused or could not be reached, and why */
  refused: EscrowRefusal[]
}

/**
 * Reserves at `need` escrows, the first `need` candidates at once; each that refuses or
 * cannot be reached hands its place to the next candidate (funds are per escrow: one short
 * of them may be replaced by another of the offer). Fewer than `need`: those that held are
 * cancelled, and PurchaseRefusedError names every escrow tried.
 */
export async function reserveEscrows (init: ReserveInit): Promise<Reserved> {
  const { offer, need, signal } = init
  const terms = offer.body.terms
  const encoded = encodeObject(offer)
  const queue = [...init.candidates]
  const held: number[] = []
  const refused: EscrowRefusal[] = []
  const lane = async (): Promise<void> => {
    for (let j = queue.shift(); j != null; j = queue.shift()) {
      signal.throwIfAborted()
      const peer = terms.escrows[j - 1]!.peer
      try {
        await init.check(j)
        await withRedial(async s => requestReserve({ connectionManager: init.streams }, peerIdFromString(peer), {
          offer: encoded, j, purchase: init.purchase, amount: terms.price, device: init.device
        }, { signal: s }), { signal: timeoutSignal(RESERVE_TIMEOUT_MS, signal), log: init.log, what: `escrow ${j}` })
        held.push(j)
        init.progress({ phase: 'escrow', j, peer, state: 'reserved', have: held.length, need })
        return
      } catch (err: any) {
        if (signal.aborted) throw err
        // answered before (a buy interrupted after its request): the request replays that answer
        if (err instanceof RemoteError && err.code === 'ERR_ALREADY_ANSWERED') {
          held.push(j)
          return
        }
        const refusal = refusalOf(j, peer, err)
        init.log('escrow %d (%s) holds no reservation: %s', j, peer, refusal.code)
        refused.push(refusal)
        init.progress({ phase: 'escrow', j, peer, state: 'refused', code: refusal.code, have: held.length, need })
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: need }, lane))
  } catch (err) {
    await cancelReservations(init, held)
    throw err
  }
  if (held.length < need) {
    await cancelReservations(init, held)
    refused.sort((a, b) => a.j - b.j)
    throw new PurchaseRefusedError(refused, held.length, terms)
  }
  return { held, refused }
}

/** Gives back the reservations at these escrows, all at once; an escrow that already answered keeps its payment */
export async function cancelReservations (init: { streams: StreamOpener, log: Logger, offer: Signed<Offer>, purchase: string }, js: number[]): Promise<void> {
  await Promise.all(js.map(async j => {
    const peer = init.offer.body.terms.escrows[j - 1]!.peer
    try {
      const answer = await requestCancelReservation({ connectionManager: init.streams }, peerIdFromString(peer), init.purchase, { signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS) })
      init.log('reservation at escrow %d %s', j, answer.cancelled ? 'cancelled' : 'was no longer open')
    } catch (err: any) {
      // it expires there on its own; an answered one stays paid
      init.log('reservation at escrow %d not cancelled: %s', j, err.code ?? err.message)
    }
  }))
}
