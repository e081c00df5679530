/**
 * /keyfair/escrow/unblind/1.0.0 (docs/protocol.md, Protocols): a device-signed request (purchase id,
 * the seller-signed offer, share index j, blinded b_j, buyer account, timestamp) in;
 * the escrow-signed answer (z_j, hold id) out, sent only after the hold committed.
 * The same request again gets the same answer and no second charge.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { Uint8ArrayList } from 'uint8arraylist'
import { FramedService, encodeMessage, expectBytes, expectRecord, withFrames } from '../toolkit/index.ts'
import { BadMessageError, FrameTooLargeError } from '../errors.ts'
import { ObjectError } from '../../device/objects/errors.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const UNBLIND_PROTOCOL = '/keyfair/escrow/unblind/1.0.0'

export const UNBLIND_LIMITS: ProtocolLimits = {
  // a request carries the whole signed offer and the device certificate
  maxFrameBytes: 256 * 1024,
  readTimeoutMs: 15_000,
  // as many as one buyer opens: each new stream may deliver a 256 KiB yamux window unasked,
  // garbage once the budget resets it, so this bounds what one connection can push at once
  maxInboundStreams: 64,
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

/**
 * The request frame's body, `{ v: 1, request }` in dag-cbor, with the device's encoding
 * of the request inside verbatim: in dag-cbor's key order "v" comes before "request",
 * so it is this prefix followed by the request's bytes.
 */
const REQUEST_PREFIX = ((): Uint8Array => {
  const probe = encodeMessage({ v: 1, request: 0 })
  if (probe.at(-1) !== 0) throw new Error('unexpected encoding of the unblind request frame')
  return probe.subarray(0, -1)
})()

/**
 * The body of the MESSAGE frame `{ v: 1, request }`, carrying the device's bytes as they
 * are, without decoding and encoding the request again
 */
export function unblindRequestBody (request: Uint8Array): Uint8ArrayList {
  const body = new Uint8ArrayList(REQUEST_PREFIX, request)
  // refused before any dial, as the frame stream would refuse it
  if (body.byteLength + 1 > UNBLIND_LIMITS.maxFrameBytes) throw new FrameTooLargeError(`refusing to send a ${body.byteLength + 1}-byte frame (max ${UNBLIND_LIMITS.maxFrameBytes})`)
  return body
}

/** Sends a device-signed request (as the device encoded it); resolves to the encoded signed answer */
export async function requestUnblind (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], request: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
  // one dag-cbor value, or it is not sent (the escrow checks everything else)
  try {
    dagCbor.decode(request)
  } catch {
    throw new ObjectError('not valid dag-cbor')
  }
  const body = unblindRequestBody(request)
  return withFrames(components.connectionManager, escrow, UNBLIND_PROTOCOL, UNBLIND_LIMITS, async frames => {
    await frames.writeEncodedMessage(body, options)
    const a = expectRecord(await frames.readMessage(options), 'unblind answer')
    return expectBytes(a.answer, 'answer', UNBLIND_LIMITS.maxFrameBytes, 1)
  }, options)
}
