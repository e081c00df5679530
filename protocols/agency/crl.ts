/**
 * /keyfair/agency/crl/1.0.0 (docs/protocol.md, Protocols): the agency's current signed
 * revocation list (X.509 v2 CRL, DER). The list is signed, so the answer needs
 * no trust in the peer that served it; the caller verifies it against the root.
 */
import { BadMessageError } from '../errors.ts'
import { FramedService, expectBytes, expectRecord, expectString, withFrames } from '../toolkit/index.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const CRL_PROTOCOL = '/keyfair/agency/crl/1.0.0'

/** Largest CRL carried: 1 MiB, about 25 000 revocations. */
export const MAX_CRL_BYTES = 1024 * 1024

export const CRL_LIMITS: ProtocolLimits = {
  // room for the list plus the frame's CBOR envelope
  maxFrameBytes: MAX_CRL_BYTES + 64,
  // the request is `{ v: 1 }`
  maxRequestBytes: 1024,
  readTimeoutMs: 10_000,
  maxInboundStreams: 4,
  maxOutboundStreams: 2
}

export interface CrlRequest {
  v: 1
}

export interface CrlAnswer {
  v: 1
  crl: Uint8Array
  /** the agency's root certificate (PEM): trusted by whoever trusts this agency's peer id */
  root: string
}

export interface CrlSource {
  currentCrl: () => Promise<Uint8Array>
  root: () => string
}

export type CrlServiceComponents = FramedServiceComponents

export interface CrlServiceInit {
  source: CrlSource
  limits?: Partial<ProtocolLimits>
}

export class CrlService extends FramedService {
  readonly protocol = CRL_PROTOCOL
  private readonly source: CrlSource

  constructor (components: CrlServiceComponents, init: CrlServiceInit) {
    super(components, 'keyfair:agency:crl', { ...CRL_LIMITS, ...init.limits })
    this.source = init.source
  }

  protected async handle (frames: FrameStream): Promise<void> {
    parseCrlRequest(await frames.readMessage())
    await frames.writeMessage({ v: 1, crl: await this.source.currentCrl(), root: this.source.root() } satisfies CrlAnswer)
  }
}

/** Fetches the current CRL (DER) from a peer serving the protocol; it is not verified here. */
export async function requestCrl (
  components: { connectionManager: StreamOpener },
  peer: PeerId | Multiaddr | Multiaddr[],
  options: AbortOptions = {}
): Promise<Uint8Array> {
  return (await requestCrlAnswer(components, peer, options)).crl
}

/** The CRL and the root, as the agency sent them (a caller that dialled the agency by its peer id may trust the root) */
export async function requestCrlAnswer (
  components: { connectionManager: StreamOpener },
  peer: PeerId | Multiaddr | Multiaddr[],
  options: AbortOptions = {}
): Promise<CrlAnswer> {
  return withFrames(components.connectionManager, peer, CRL_PROTOCOL, CRL_LIMITS, async frames => {
    await frames.writeMessage({ v: 1 } satisfies CrlRequest, options)
    return parseCrlAnswer(await frames.readMessage(options))
  }, options)
}

export function parseCrlRequest (value: unknown): CrlRequest {
  const message = expectRecord(value)
  if (message.v !== 1) throw new BadMessageError('v must be 1')
  return { v: 1 }
}

export function parseCrlAnswer (value: unknown): CrlAnswer {
  const message = expectRecord(value)
  if (message.v !== 1) throw new BadMessageError('v must be 1')
  return { v: 1, crl: expectBytes(message.crl, 'crl', MAX_CRL_BYTES, 1), root: expectString(message.root, 'root', 16384) }
}
