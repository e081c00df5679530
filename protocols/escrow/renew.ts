/**
 * /keyfair/escrow/renew/1.0.0: a device-signed renewal request in, the escrow's signed
 * statement out, that the device's certificate is valid and unrevoked under the
 * escrow's current CRL. A device plays a licence past its offline lifetime only with
 * such a statement, from an escrow of the licence's offer, answering its own nonce.
 */
import { FramedService, expectBytes, expectRecord, withFrames } from '../toolkit/index.ts'
import { BadMessageError } from '../errors.ts'
import { decodeObject } from '../../device/objects/codec.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const RENEW_PROTOCOL = '/keyfair/escrow/renew/1.0.0'

export const RENEW_LIMITS: ProtocolLimits = {
  // a request carries the device's signing certificate; the statement is small
  maxFrameBytes: 64 * 1024,
  // a certificate of a few KiB and a small body: nothing larger is read
  maxRequestBytes: 16 * 1024,
  readTimeoutMs: 10_000,
  maxInboundStreams: 32,
  maxOutboundStreams: 8
}

export interface Renewer {
  /** the signed statement, encoded; throws a coded error when the device is refused */
  renew: (signed: unknown) => Promise<Uint8Array>
}

export class RenewService extends FramedService {
  readonly protocol = RENEW_PROTOCOL
  private readonly renewer: Renewer

  constructor (components: FramedServiceComponents, init: { renewer: Renewer, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:escrow:renew', { ...RENEW_LIMITS, ...init.limits })
    this.renewer = init.renewer
  }

  protected async handle (frames: FrameStream): Promise<void> {
    const message = expectRecord(await frames.readMessage())
    if (message.v !== 1) throw new BadMessageError('unsupported version')
    await frames.writeMessage({ v: 1, renewal: await this.renewer.renew(message.request) })
  }
}

/** Sends an encoded device-signed renewal request; resolves to the escrow's signed statement, encoded */
export async function requestRenewal (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], request: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
  return withFrames(components.connectionManager, escrow, RENEW_PROTOCOL, RENEW_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, request: decodeObject(request) }, options)
    const a = expectRecord(await frames.readMessage(options), 'renew answer')
    if (a.v !== 1) throw new BadMessageError('unsupported version')
    // the device parses and checks the statement itself
    return expectBytes(a.renewal, 'renewal', RENEW_LIMITS.maxFrameBytes, 1)
  }, options)
}
