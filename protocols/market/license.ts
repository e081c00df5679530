/**
 * /keyfair/license/1.0.0 (docs/protocol.md, license; the patent's Fig. 5): a buyer's device
 * certificates for an offer in; a seller-signed licence bound to that device out
 * (the key split K = K_esc ⊕ K_dev, K_dev wrapped to the certified encryption key).
 * Only the seller answers, and only while it is online.
 */
import { CID } from 'multiformats/cid'
import { BadMessageError } from '../errors.ts'
import { FramedService, expectRecord, expectString, withFrames } from '../toolkit/index.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const LICENSE_PROTOCOL = '/keyfair/license/1.0.0'

export const LICENSE_LIMITS: ProtocolLimits = {
  maxFrameBytes: 256 * 1024,
  // an offer CID and two certificates of at most 16 KiB each
  maxRequestBytes: 40 * 1024,
  readTimeoutMs: 15_000,
  maxInboundStreams: 32,
  maxOutboundStreams: 16
}

export interface LicenceRequest {
  offer: CID
  /** the device's signing and encryption certificates (PEM) */
  signing: string
  encryption: string
}

export interface Licensor {
  /** the encoded signed licence; refusals are thrown typed errors */
  licence: (request: LicenceRequest) => Promise<unknown>
}

export class LicenseService extends FramedService {
  readonly protocol = LICENSE_PROTOCOL
  private readonly licensor: Licensor

  constructor (components: FramedServiceComponents, init: { licensor: Licensor, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:license', { ...LICENSE_LIMITS, ...init.limits })
    this.licensor = init.licensor
  }

  protected async handle (frames: FrameStream): Promise<void> {
    const request = expectRecord(await frames.readMessage())
    if (request.v !== 1) throw new BadMessageError('unsupported version')
    const offer = CID.asCID(request.offer)
    if (offer == null) throw new BadMessageError('offer must be a CID')
    const licence = await this.licensor.licence({
      offer,
      signing: expectString(request.signing, 'signing', 16384),
      encryption: expectString(request.encryption, 'encryption', 16384)
    })
    await frames.writeMessage({ v: 1, licence })
  }
}

/** The signed licence as the seller sent it (a decoded object; the device verifies it) */
export async function requestLicence (components: { connectionManager: StreamOpener }, seller: PeerId | Multiaddr | Multiaddr[], request: LicenceRequest, options: AbortOptions = {}): Promise<unknown> {
  return withFrames(components.connectionManager, seller, LICENSE_PROTOCOL, LICENSE_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, offer: request.offer, signing: request.signing, encryption: request.encryption }, options)
    return expectRecord(await frames.readMessage(options), 'licence').licence
  }, options)
}
