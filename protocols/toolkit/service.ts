import { peerIdFromString } from '@libp2p/peer-id'
import { isMultiaddr } from '@multiformats/multiaddr'
import { KeyfairError, isFramingError } from '../errors.ts'
import { FrameStream } from './frames.ts'
import type { InboundBudget } from './budget.ts'
import type { FrameLimits } from './frames.ts'
import type { AbortOptions, ComponentLogger, Connection, Logger, PeerId, Startable, Stream, StreamHandler } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * What a client needs to open streams: the connection manager, or anything with its
 * openStream; with closeConnections, a connection found dead is dropped and redialled.
 */
export type StreamOpener = Pick<ConnectionManager, 'openStream'> & Partial<Pick<ConnectionManager, 'closeConnections'>>

/** Everything a protocol declares about its streams. */
export interface ProtocolLimits extends FrameLimits {
  maxInboundStreams: number
  maxOutboundStreams: number
  /**
   * Largest request the serving side reads (default maxFrameBytes, which bounds answers
   * too): a small request for a large answer is not buffered at the answer's size
   */
  maxRequestBytes?: number
}

/** What serveFrames adds to a handler */
export interface ServeOptions {
  /** the node's budget for inbound data: every stream takes a lease */
  budget?: InboundBudget
  /** judges each frame's length from its prefix, before its body is buffered (throw to refuse) */
  admit?: (length: number, connection: Connection) => void
}

export type FrameHandler = (frames: FrameStream, connection: Connection) => Promise<void>

/**
 * Wraps a protocol handler so that every stream gets framing limits and ends
 * in one of three ways: closed after a normal exchange; closed after a final
 * error frame (typed errors the caller should see); or reset (broken framing,
 * a stalled peer, or a fault we will not describe to the remote).
 * Whatever happens, only this stream is affected.
 */
export function serveFrames (log: Logger, limits: FrameLimits & { maxRequestBytes?: number }, handler: FrameHandler, options: ServeOptions = {}): StreamHandler {
  const { budget, admit } = options
  return async (stream: Stream, connection: Connection): Promise<void> => {
    let frames: FrameStream | undefined
    const lease = budget?.open(connection.remotePeer.toString(), err => {
      if (frames != null) frames.refuse(err)
      else stream.abort(err)
    })
    frames = new FrameStream(stream, limits, {
      maxReadFrameBytes: limits.maxRequestBytes,
      lease,
      admit: admit == null ? undefined : length => { admit(length, connection) }
    })
    try {
      await handler(frames, connection)
      await stream.close({ signal: AbortSignal.timeout(limits.readTimeoutMs) })
    } catch (caught: any) {
      // the device layer's typed errors (bad object, bad signature, certificate refused…) are
      // KeyfairErrors too: refusals with their own code
      let err = caught
      if (err instanceof KeyfairError && !isFramingError(err) && stream.writeStatus === 'writable') {
        log('refusing %p: %s', connection.remotePeer, err.code)
        try {
          await frames.writeError(err, { signal: AbortSignal.timeout(limits.readTimeoutMs) })
          await stream.close({ signal: AbortSignal.timeout(limits.readTimeoutMs) })
          return
        } catch (writeErr) {
          err = writeErr
        }
      }
      if (err instanceof KeyfairError) {
        log('resetting stream from %p: %s', connection.remotePeer, err.code)
      } else {
        log.error('stream from %p failed - %e', connection.remotePeer, err)
      }
      stream.abort(err)
    }
  }
}

/** Opens an outbound stream wrapped in frames; the caller must `close()` or `abort()` it. */
export async function dialFrames (
  connectionManager: StreamOpener,
  peer: PeerId | Multiaddr | Multiaddr[],
  protocol: string,
  limits: ProtocolLimits,
  options: AbortOptions = {}
): Promise<FrameStream> {
  // only the signal reaches libp2p: a caller's other options (a progress callback above all)
  // would receive libp2p's own dial events and objects
  const signal = options.signal
  const open = async (): Promise<Stream> => connectionManager.openStream(peer, protocol, { signal, maxOutboundStreams: limits.maxOutboundStreams })
  let stream: Stream
  try {
    stream = await open()
  } catch (err: any) {
    // libp2p can keep handing out a connection whose peer has died (its socket not yet
    // seen closed): drop that peer's connections and dial again, once
    const remote = peerOf(peer)
    if (err?.name !== 'ConnectionClosedError' || remote == null || connectionManager.closeConnections == null) throw err
    await connectionManager.closeConnections(remote, { signal })
    stream = await open()
  }
  return new FrameStream(stream, limits)
}

function peerOf (peer: PeerId | Multiaddr | Multiaddr[]): PeerId | undefined {
  if (!Array.isArray(peer) && !isMultiaddr(peer)) return peer
  const id = (Array.isArray(peer) ? peer[0] : peer)?.getComponents().find(c => c.name === 'p2p')?.value
  return id == null ? undefined : peerIdFromString(id)
}

/**
 * Runs a client exchange on a fresh stream: the stream is closed when `exchange`
 * returns and reset when it throws, so no stream outlives its caller.
 */
export async function withFrames<T> (
  connectionManager: StreamOpener,
  peer: PeerId | Multiaddr | Multiaddr[],
  protocol: string,
  limits: ProtocolLimits,
  exchange: (frames: FrameStream) => Promise<T>,
  options: AbortOptions = {}
): Promise<T> {
  const frames = await dialFrames(connectionManager, peer, protocol, limits, options)
  try {
    const result = await exchange(frames)
    await frames.stream.close({ signal: options.signal })
    return result
  } catch (err: any) {
    frames.stream.abort(err)
    throw err
  }
}

export interface FramedServiceComponents {
  registrar: Registrar
  logger: ComponentLogger
  /** the node's budget for inbound data (every keyfair libp2p node has one) */
  inboundBudget?: InboundBudget
}

/**
 * A protocol served in frames: registers `handle` with the protocol's limits on
 * start and unregisters on stop. Subclasses give the protocol id and the handler.
 */
export abstract class FramedService implements Startable {
  abstract readonly protocol: string
  protected readonly log: Logger
  protected readonly limits: ProtocolLimits
  private readonly registrar: Registrar
  private readonly budget?: InboundBudget

  constructor (components: FramedServiceComponents, component: string, limits: ProtocolLimits) {
    this.registrar = components.registrar
    this.log = components.logger.forComponent(component)
    this.limits = limits
    this.budget = components.inboundBudget
  }

  protected abstract handle (frames: FrameStream, connection: Connection): Promise<void>

  /**
   * Judges a request frame's length from its prefix, before its body arrives: beyond
   * maxRequestBytes a frame is refused anyway; a protocol whose requests may be large
   * only for some callers says who here (throw a KeyfairError to refuse)
   */
  protected admitRequest? (length: number, connection: Connection): void

  async start (): Promise<void> {
    const admit = this.admitRequest?.bind(this)
    await this.registrar.handle(this.protocol, serveFrames(this.log, this.limits, async (frames, connection) => this.handle(frames, connection), { budget: this.budget, admit }), {
      maxInboundStreams: this.limits.maxInboundStreams,
      maxOutboundStreams: this.limits.maxOutboundStreams
    })
  }

  async stop (): Promise<void> {
    await this.registrar.unhandle(this.protocol)
  }
}
