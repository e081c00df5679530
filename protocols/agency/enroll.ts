/**
 * /keyfair/agency/enroll/1.0.0 (docs/protocol.md, Protocols): a device or an escrow presents a
 * one-time enrollment code and its CSR(s); the agency answers with the
 * certificates and its root. One request, one answer, then the stream closes.
 * A refusal (used code, bad CSR, …) is an error frame with a stable code.
 */
import { BadMessageError } from '../errors.ts'
import { FramedService, expectRecord, expectString, withFrames } from '../toolkit/index.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const ENROLL_PROTOCOL = '/keyfair/agency/enroll/1.0.0'

export const ENROLL_LIMITS: ProtocolLimits = {
  maxFrameBytes: 64 * 1024,
  readTimeoutMs: 10_000,
  maxInboundStreams: 4,
  maxOutboundStreams: 2
}

/** Longest PEM accepted for one CSR or certificate. */
export const MAX_PEM_LENGTH = 16 * 1024
const MAX_CODE_LENGTH = 64
const SLOTS = ['signing', 'encryption', 'escrow'] as const

export type CertificateSlot = typeof SLOTS[number]
/** PEM texts by slot: a device sends signing + encryption, an escrow sends escrow. */
export type PemSet = Partial<Record<CertificateSlot, string>>

export interface EnrollRequest {
  v: 1
  code: string
  csrs: PemSet
}

export interface EnrollAnswer {
  v: 1
  certificates: PemSet
  /** The agency's root certificate (PEM). */
  root: string
}

/** What the agency side does with a request; refusals are thrown KeyfairErrors. */
export interface Enroller {
  enroll: (request: { code: string, csrs: PemSet, remotePeer: PeerId }) => Promise<{ certificates: PemSet, root: string }>
}

export type EnrollServiceComponents = FramedServiceComponents

export interface EnrollServiceInit {
  enroller: Enroller
  limits?: Partial<ProtocolLimits>
}

export class EnrollService extends FramedService {
  readonly protocol = ENROLL_PROTOCOL
  private readonly enroller: Enroller

  constructor (components: EnrollServiceComponents, init: EnrollServiceInit) {
    super(components, 'keyfair:agency:enroll', { ...ENROLL_LIMITS, ...init.limits })
    this.enroller = init.enroller
  }

  protected async handle (frames: FrameStream, connection: Connection): Promise<void> {
    const request = parseEnrollRequest(await frames.readMessage())
    const answer = await this.enroller.enroll({ code: request.code, csrs: request.csrs, remotePeer: connection.remotePeer })
    await frames.writeMessage({ v: 1, certificates: answer.certificates, root: answer.root } satisfies EnrollAnswer)
  }
}

/** Asks an agency to certify; resolves to its answer or throws its refusal as a RemoteError (same code). */
export async function requestEnrollment (
  components: { connectionManager: StreamOpener },
  agency: PeerId | Multiaddr | Multiaddr[],
  request: { code: string, csrs: PemSet },
  options: AbortOptions = {}
): Promise<EnrollAnswer> {
  const message: EnrollRequest = { v: 1, code: request.code, csrs: pemSet(request.csrs, 'csrs') }
  return withFrames(components.connectionManager, agency, ENROLL_PROTOCOL, ENROLL_LIMITS, async frames => {
    await frames.writeMessage(message, options)
    return parseEnrollAnswer(await frames.readMessage(options))
  }, options)
}

export function parseEnrollRequest (value: unknown): EnrollRequest {
  const message = expectRecord(value)
  if (message.v !== 1) throw new BadMessageError('v must be 1')
  const code = expectString(message.code, 'code', MAX_CODE_LENGTH)
  const csrs = pemSet(message.csrs, 'csrs')
  if (Object.keys(csrs).length === 0) throw new BadMessageError('csrs must name at least one CSR')
  return { v: 1, code, csrs }
}

export function parseEnrollAnswer (value: unknown): EnrollAnswer {
  const message = expectRecord(value)
  if (message.v !== 1) throw new BadMessageError('v must be 1')
  return { v: 1, certificates: pemSet(message.certificates, 'certificates'), root: expectString(message.root, 'root', MAX_PEM_LENGTH) }
}

/** A map of known slots to PEM strings; unknown slots are refused rather than ignored. */
function pemSet (value: unknown, field: string): PemSet {
  const record = expectRecord(value, field)
  const out: PemSet = {}
  for (const [key, pem] of Object.entries(record)) {
    if (!(SLOTS as readonly string[]).includes(key)) throw new BadMessageError(`${field}.${key} is not one of ${SLOTS.join(', ')}`)
    if (pem == null) continue
    out[key as CertificateSlot] = expectString(pem, `${field}.${key}`, MAX_PEM_LENGTH)
  }
  return out
}
