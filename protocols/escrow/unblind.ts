/**
 * /keyfair/escrow/unblind/1.0.0 (DESIGN §3, §4): a device-signed request (purchase id,
 * the seller-signed offer, share index j, blinded b_j, buyer account, timestamp) in;
 * the escrow-signed answer (z_j, hold id) out, sent only after the hold committed.
 * The same request again gets the same answer and no second charge.
 */
import { FramedService, expectBytes, expectRecord, withFrames } from '../toolkit/index.ts'
import { BadMessageError } from '../errors.ts'
import { decodeObject } from '../../device/objects/codec.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const UNBLIND_PROTOCOL = '/keyfair/escrow/unblind/1.0.0'

export const UNBLIND_LIMITS: ProtocolLimits = {
  // a request carries the whole signed offer and the device certificate
  maxFrameBytes: 256 * 1024,
  readTimeoutMs: 15_000,
  maxInboundStreams: 256,
  maxOutboundStreams: 64
}

export interface Unblinder {
  /** returns the encoded signed answer; refusals are thrown typed errors */
  unblind: (request: unknown, caller: string) => Promise<Uint8Array>
}

export class UnblindService extends FramedService {
  readonly protocol = UNBLIND_PROTOCOL
  private readonly unblinder: Unblinder

  constructor (components: FramedServiceComponents, init: { unblinder: Unblinder, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:escrow:unblind', { ...UNBLIND_LIMITS, ...init.limits })
    this.unblinder = init.unblinder
  }

  protected async handle (frames: FrameStream, connection: Connection): Promise<void> {
    const message = expectRecord(await frames.readMessage())
    if (message.v !== 1) throw new BadMessageError('unsupported version')
    const answer = await this.unblinder.unblind(message.request, connection.remotePeer.toString())
    await frames.writeMessage({ v: 1, answer })
  }
}

/** Sends a device-signed request (as the device encoded it); resolves to the encoded signed answer */
export async function requestUnblind (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], request: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
  return withFrames(components.connectionManager, escrow, UNBLIND_PROTOCOL, UNBLIND_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, request: decodeObject(request) }, options)
    const a = expectRecord(await frames.readMessage(options), 'unblind answer')
    return expectBytes(a.answer, 'answer', UNBLIND_LIMITS.maxFrameBytes, 1)
  }, options)
}
