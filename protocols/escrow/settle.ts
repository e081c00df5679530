/**
 * /keyfair/escrow/settle/1.0.0 (docs/protocol.md, Protocols): a device-signed receipt (the hold
 * goes to the seller) or dispute (judged on its proof: refund or refusal) for a
 * purchase; answers how the hold ended.
 */
import { FramedService, expectBoolean, expectRecord, expectString, withFrames } from '../toolkit/index.ts'
import { BadMessageError, FrameTooLargeError } from '../errors.ts'
import { decodeObject } from '../../device/objects/codec.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const SETTLE_PROTOCOL = '/keyfair/escrow/settle/1.0.0'

export const SETTLE_LIMITS: ProtocolLimits = {
  // a chunk dispute carries one chunk (≤ 16 MiB) and the manifest
  maxFrameBytes: 40 * 1024 * 1024,
  readTimeoutMs: 30_000,
  maxInboundStreams: 32,
  maxOutboundStreams: 16
}

export interface SettleAnswer {
  v: 1
  hold: string
  purchase: string
  state: 'released' | 'refunded'
  ended: boolean
  refused: boolean
  reason: string
}

/** Largest settlement anyone may send: a receipt, a key or fraud dispute (a chunk dispute is larger) */
export const MAX_PLAIN_SETTLEMENT_BYTES = 256 * 1024

export interface Settler {
  settle: (signed: unknown) => Promise<SettleAnswer>
  /**
   * Whether `caller` may send a settlement frame of `length` bytes (over
   * MAX_PLAIN_SETTLEMENT_BYTES): judged on the prefix, before the body is buffered
   */
  admits?: (caller: string, length: number) => boolean
}

export class SettleService extends FramedService {
  readonly protocol = SETTLE_PROTOCOL
  private readonly settler: Settler

  constructor (components: FramedServiceComponents, init: { settler: Settler, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:escrow:settle', { ...SETTLE_LIMITS, ...init.limits })
    this.settler = init.settler
  }

  /** A chunk dispute carries a chunk: only a caller the settler vouches for may send that much */
  protected override admitRequest (length: number, connection: Connection): void {
    if (length <= MAX_PLAIN_SETTLEMENT_BYTES) return
    if (this.settler.admits?.(connection.remotePeer.toString(), length) !== true) {
      throw new FrameTooLargeError(`a settlement over ${MAX_PLAIN_SETTLEMENT_BYTES} bytes is taken only from a buyer with an open hold here`)
    }
  }

  protected async handle (frames: FrameStream): Promise<void> {
    const message = expectRecord(await frames.readMessage())
    if (message.v !== 1) throw new BadMessageError('unsupported version')
    await frames.writeMessage(await this.settler.settle(message.settlement))
  }
}

/** Sends an encoded signed receipt or dispute; resolves to how the hold ended */
export async function requestSettle (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], settlement: Uint8Array, options: AbortOptions = {}): Promise<SettleAnswer> {
  return withFrames(components.connectionManager, escrow, SETTLE_PROTOCOL, SETTLE_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, settlement: decodeObject(settlement) }, options)
    const a = expectRecord(await frames.readMessage(options), 'settle answer')
    const state = a.state
    if (state !== 'released' && state !== 'refunded') throw new BadMessageError('state must be released or refunded')
    return {
      v: 1,
      hold: expectString(a.hold, 'hold', 128),
      purchase: expectString(a.purchase, 'purchase', 64),
      state,
      ended: expectBoolean(a.ended, 'ended'),
      refused: expectBoolean(a.refused, 'refused'),
      reason: expectString(a.reason, 'reason', 1024)
    }
  }, options)
}
