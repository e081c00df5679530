/**
 * /keyfair/escrow/reserve/1.0.0 (docs/protocol.md, escrow/reserve): before its device sends any blinded request,
 * a buyer asks each escrow it will pay to reserve the price: a hold that answers nothing,
 * bound to (device, purchase id, offer, amount) and charged to the caller's account (the
 * peer id its connection authenticated). The device's request under that purchase later
 * takes the reservation as its hold, with no second charge. `cancel` gives an unanswered
 * reservation back at once; one not followed by a request goes back when it expires.
 *
 *   → { v: 1, op: 'reserve', offer, j, purchase, amount, device }
 *   ← { v: 1, reservation, amount, expiresAt }
 *   → { v: 1, op: 'cancel', purchase }
 *   ← { v: 1, cancelled }
 *
 * `offer` is the seller-signed offer as encoded, `device` the device's signing certificate
 * (PEM), checked against the agency and its revocation list. Refusals are error frames:
 * ERR_INSUFFICIENT_FUNDS carries `details: { balance, amount }` in minor units.
 */
import { BadMessageError } from '../errors.ts'
import { FramedService, expectBoolean, expectBytes, expectRecord, expectString, expectUint, withFrames } from '../toolkit/index.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const RESERVE_PROTOCOL = '/keyfair/escrow/reserve/1.0.0'

export const RESERVE_LIMITS: ProtocolLimits = {
  // a request carries the whole signed offer and the device's certificate
  maxFrameBytes: 256 * 1024,
  readTimeoutMs: 10_000,
  maxInboundStreams: 32,
  maxOutboundStreams: 32
}

/** a purchase id (the device's, hex) and a PEM certificate, with room to spare */
const MAX_PURCHASE_CHARS = 128
const MAX_CERTIFICATE_CHARS = 16 * 1024

export interface ReserveRequest {
  /** the seller-signed offer, encoded */
  offer: Uint8Array
  /** the escrow's place in the offer, 1-based */
  j: number
  purchase: string
  /** the offer's price per share, in minor units */
  amount: number
  /** the device's signing certificate (PEM) */
  device: string
}

export interface ReserveAnswer {
  v: 1
  reservation: string
  amount: number
  /** when it goes back to the buyer unless the device's request came (ms since 1970) */
  expiresAt: number
}

export interface CancelAnswer {
  v: 1
  /** false when nothing was open under the purchase (cancelled or expired before) */
  cancelled: boolean
}

export interface Reserver {
  reserve: (request: ReserveRequest, caller: string) => Promise<ReserveAnswer>
  cancel: (purchase: string, caller: string) => Promise<CancelAnswer>
}

export class ReserveService extends FramedService {
  readonly protocol = RESERVE_PROTOCOL
  private readonly reserver: Reserver

  constructor (components: FramedServiceComponents, init: { reserver: Reserver, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:escrow:reserve', { ...RESERVE_LIMITS, ...init.limits })
    this.reserver = init.reserver
  }

  protected async handle (frames: FrameStream, connection: Connection): Promise<void> {
    const message = expectRecord(await frames.readMessage())
    if (message.v !== 1) throw new BadMessageError('unsupported version')
    const caller = connection.remotePeer.toString()
    if (message.op === 'cancel') {
      await frames.writeMessage(await this.reserver.cancel(expectString(message.purchase, 'purchase', MAX_PURCHASE_CHARS), caller))
      return
    }
    if (message.op !== 'reserve') throw new BadMessageError('op must be reserve or cancel')
    await frames.writeMessage(await this.reserver.reserve(parseReserveRequest(message), caller))
  }
}

function parseReserveRequest (m: Record<string, unknown>): ReserveRequest {
  return {
    offer: expectBytes(m.offer, 'offer', RESERVE_LIMITS.maxFrameBytes, 1),
    j: expectUint(m.j, 'j'),
    purchase: expectString(m.purchase, 'purchase', MAX_PURCHASE_CHARS),
    amount: expectUint(m.amount, 'amount'),
    device: expectString(m.device, 'device', MAX_CERTIFICATE_CHARS)
  }
}

/** Asks the escrow to reserve the price; resolves once the reservation is durable there */
export async function requestReserve (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], request: ReserveRequest, options: AbortOptions = {}): Promise<ReserveAnswer> {
  return withFrames(components.connectionManager, escrow, RESERVE_PROTOCOL, RESERVE_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, op: 'reserve', ...request }, options)
    const a = expectRecord(await frames.readMessage(options), 'reserve answer')
    return { v: 1, reservation: expectString(a.reservation, 'reservation', 64), amount: expectUint(a.amount, 'amount'), expiresAt: expectUint(a.expiresAt, 'expiresAt') }
  }, options)
}

/** Gives the caller's unanswered reservation of `purchase` back; ERR_ALREADY_ANSWERED once the escrow answered */
export async function requestCancelReservation (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], purchase: string, options: AbortOptions = {}): Promise<CancelAnswer> {
  return withFrames(components.connectionManager, escrow, RESERVE_PROTOCOL, RESERVE_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, op: 'cancel', purchase }, options)
    const a = expectRecord(await frames.readMessage(options), 'cancel answer')
    return { v: 1, cancelled: expectBoolean(a.cancelled, 'cancelled') }
  }, options)
}
