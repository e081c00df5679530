/**
 * /keyfair/escrow/info/1.0.0 (docs/protocol.md, Protocols): the escrow's certificate chain, RSA
 * public key (modulus) and terms of service. Everything in it is public; a buyer
 * or seller checks the certificate against its agency root before trusting it.
 */
import { FramedService, expectBytes, expectRecord, expectString, expectUint, withFrames } from '../toolkit/index.ts'
import { BadMessageError } from '../errors.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const INFO_PROTOCOL = '/keyfair/escrow/info/1.0.0'

export const INFO_LIMITS: ProtocolLimits = {
  maxFrameBytes: 64 * 1024,
  // the request is `{ v: 1 }`
  maxRequestBytes: 1024,
  readTimeoutMs: 10_000,
  maxInboundStreams: 32,
  maxOutboundStreams: 16
}

export interface EscrowInfoAnswer {
  v: 1
  peer: string
  n: Uint8Array
  certificate: string
  root: string
  currency: string
  holdTtlMs: number
}

export interface InfoSource {
  info: () => EscrowInfoAnswer
}

export class EscrowInfoService extends FramedService {
  readonly protocol = INFO_PROTOCOL
  private readonly source: InfoSource

  constructor (components: FramedServiceComponents, init: { source: InfoSource, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:escrow:info', { ...INFO_LIMITS, ...init.limits })
    this.source = init.source
  }

  protected async handle (frames: FrameStream): Promise<void> {
    const request = expectRecord(await frames.readMessage())
    if (request.v !== 1) throw new BadMessageError('unsupported version')
    await frames.writeMessage(this.source.info())
  }
}

export async function requestEscrowInfo (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], options: AbortOptions = {}): Promise<EscrowInfoAnswer> {
  return withFrames(components.connectionManager, escrow, INFO_PROTOCOL, INFO_LIMITS, async frames => {
    await frames.writeMessage({ v: 1 }, options)
    const a = expectRecord(await frames.readMessage(options), 'escrow info')
    if (a.v !== 1) throw new BadMessageError('unsupported version')
    return {
      v: 1,
      peer: expectString(a.peer, 'peer', 128),
      n: expectBytes(a.n, 'n', 1024, 64),
      certificate: expectString(a.certificate, 'certificate', 16384),
      root: expectString(a.root, 'root', 16384),
      currency: expectString(a.currency, 'currency', 12),
      holdTtlMs: expectUint(a.holdTtlMs, 'holdTtlMs')
    }
  }, options)
}
