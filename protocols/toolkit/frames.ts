import { lpStream } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  AbortedError, FrameTooLargeError, KeyfairError, MalformedFrameError,
  ReadTimeoutError, RemoteError, TruncatedFrameError
} from '../errors.ts'
import { decodeMessage, encodeMessage } from './codec.ts'
import { Deadline } from './signals.ts'
import { drained } from './drain.ts'
import { MAX_PREFIX_BYTES, PrefixReader, prefixLength, varint } from './prefix.ts'
import type { BudgetLease } from './budget.ts'
import type { AbortOptions, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'

/**
 * Every keyfair frame is `varint(length) ‖ kind(1) ‖ body`:
 * - MESSAGE: body is one dag-cbor value
 * - ERROR:   body is dag-cbor `{ code, message }`, always the last frame sent
 * - DATA:    body is raw bytes (ciphertext chunks travel without a CBOR copy)
 */
export const FrameKind = {
  MESSAGE: 0,
  ERROR: 1,
  DATA: 2
} as const

export interface FrameLimits {
  /** Largest frame (kind byte included) this side accepts. */
  maxFrameBytes: number
  /** How long one read may wait for a whole frame. */
  readTimeoutMs: number
}

/** What a serving side adds to its reads */
export interface FrameStreamOptions {
  /** largest frame this side reads (default maxFrameBytes): requests are small, answers may not be */
  maxReadFrameBytes?: number
  /** this stream's lease with the node's inbound budget: every byte in is charged to it */
  lease?: BudgetLease
  /**
   * Called with each frame's length as soon as its prefix arrives, before its body: a thrown
   * KeyfairError resets the stream, so a frame the request cannot justify is never buffered
   */
  admit?: (length: number) => void
}

export interface Frame {
  kind: number
  body: Uint8Array
}

const MAX_ERROR_MESSAGE = 512
const MAX_ERROR_DETAILS = 8
/**
 * Length-prefixed frames over a libp2p stream with a maximum size and a
 * timeout on every read. Failures come out as typed errors: a framing error
 * means the stream is unusable and should be reset by the caller.
 */
export class FrameStream {
  readonly stream: Stream
  private readonly lp: LengthPrefixedStream<Stream>
  private readonly limits: FrameLimits
  private readonly maxReadFrameBytes: number
  private readonly lease?: BudgetLease
  private readonly admit?: (length: number) => void
  /** bytes the stream delivered that no frame read has taken yet */
  private buffered = 0
  /** above this many buffered bytes the stream is paused: one whole frame waits */
  private readonly highWater: number
  private readonly maxBuffered: number
  /** bytes of the last frame read, charged until the next read (its handler is still on it) */
  private held = 0
  /** the frame boundaries, followed as bytes arrive (lpStream only parses on read) */
  private readonly prefix = new PrefixReader()
  private bodyLeft = 0
  /** why this side reset the stream while bytes arrived */
  private refused?: KeyfairError

  constructor (stream: Stream, limits: FrameLimits, options: FrameStreamOptions = {}) {
    this.stream = stream
    this.limits = limits
    this.maxReadFrameBytes = Math.min(options.maxReadFrameBytes ?? limits.maxFrameBytes, limits.maxFrameBytes)
    this.lease = options.lease
    this.admit = options.admit
    this.highWater = this.maxReadFrameBytes + MAX_PREFIX_BYTES
    // once paused, the stream holds what still arrives (at most its own read buffer limit)
    // and hands it over at once on resume
    this.maxBuffered = this.highWater + Math.max(stream.maxReadBufferLength, this.maxReadFrameBytes)
    this.lp = lpStream(stream, { maxDataLength: this.maxReadFrameBytes, maxBufferSize: this.maxBuffered })
    // Flow control. lpStream keeps whatever the stream delivers, and a muxer such as yamux
    // grants the sender more window as soon as bytes arrive, so a reader slower than its
    // sender (a chunk write waiting on the disk) used to overflow lpStream's buffer and lose
    // the stream. A paused stream grants no more window: the sender waits instead.
    stream.addEventListener('message', this.onMessage)
    if (this.lease != null) {
      const lease = this.lease
      stream.addEventListener('close', () => { lease.close() })
    }
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    const bytes = evt.data.byteLength
    this.buffered += bytes
    if (this.refused != null) return
    if (this.lease != null && !this.lease.charge(bytes)) return
    if (this.admit != null || this.lease != null) this.follow(evt.data)
    if (this.refused == null && this.buffered > this.highWater && this.stream.readStatus === 'readable') this.stream.pause()
  }

  /**
   * Hands the reading of the stream to the caller, who parses what comes next as it
   * arrives: this reader and its flow control let go, and bytes they had not handed out
   * go back to the stream, to be dispatched again. Taken before the request is sent, there
   * are none. Frames are still written through this object; none can be read through it.
   */
  detachReader (): Stream {
    this.stream.removeEventListener('message', this.onMessage)
    this.lp.unwrap()
    if (this.stream.readStatus === 'paused') this.stream.resume()
    return this.stream
  }

  /**
   * Follows frame boundaries through bytes as they arrive: a length is known (and judged)
   * the moment its prefix is complete, however slowly the body follows
   */
  private follow (data: Uint8Array | Uint8ArrayList): void {
    const length = data.byteLength
    let offset = 0
    while (offset < length && this.refused == null) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, length - offset)
        this.bodyLeft -= take
        offset += take
        if (this.bodyLeft === 0) this.lease?.framing(false)
        continue
      }
      const byte = data instanceof Uint8Array ? data[offset]! : data.get(offset)
      offset++
      if (!this.prefix.started) this.lease?.framing(true)
      const frame = this.pushPrefix(byte)
      if (frame < 0) continue
      this.bodyLeft = frame
      if (frame === 0) this.lease?.framing(false)
      if (frame > this.maxReadFrameBytes) {
        this.refuse(new FrameTooLargeError(`frame exceeds ${this.maxReadFrameBytes} bytes`))
        return
      }
      try {
        this.admit?.(frame)
      } catch (err) {
        this.refuse(err instanceof KeyfairError ? err : new FrameTooLargeError('frame refused', { cause: err }))
      }
    }
  }

  /** One prefix byte: the frame's length once complete, -1 before that or once refused */
  private pushPrefix (byte: number): number {
    try {
      return this.prefix.push(byte)
    } catch (err) {
      this.refuse(err as KeyfairError)
      return -1
    }
  }

  /** Resets the stream at once (a frame refused, the budget reclaiming it): reads throw `err` */
  refuse (err: KeyfairError): void {
    if (this.refused != null) return
    this.refused = err
    this.lease?.close()
    this.stream.abort(err)
  }

  async readFrame (options: AbortOptions = {}): Promise<Frame> {
    const bytes = (await this.readFrameList(options)).subarray()
    return { kind: bytes[0] ?? -1, body: bytes.subarray(1) }
  }

  /** One whole frame as the pieces it arrived in (not joined) */
  private async readFrameList (options: AbortOptions): Promise<Uint8ArrayList> {
    if (this.held > 0) {
      this.lease?.release(this.held)
      this.held = 0
    }
    if (this.refused != null) throw this.refused
    const deadline = new Deadline(this.limits.readTimeoutMs, options.signal)
    let buf: Uint8ArrayList
    try {
      buf = await this.lp.read({ signal: deadline.signal })
    } catch (err: any) {
      if (this.refused != null) throw this.refused
      if (options.signal?.aborted === true) throw new AbortedError('read aborted by caller', { cause: err })
      if (deadline.timedOut) throw new ReadTimeoutError(`no frame within ${this.limits.readTimeoutMs} ms`, { cause: err })
      if (err?.name === 'InvalidDataLengthError' || err?.name === 'InvalidDataLengthLengthError') {
        throw new FrameTooLargeError(`frame exceeds ${this.maxReadFrameBytes} bytes`, { cause: err })
      }
      if (err?.name === 'StreamBufferError') {
        throw new FrameTooLargeError(`the peer sent more than ${this.maxBuffered} bytes ahead of the reader`, { cause: err })
      }
      if (err?.name === 'UnexpectedEOFError') throw new TruncatedFrameError(undefined, { cause: err })
      throw err
    } finally {
      deadline.clear()
    }
    // counted with the shortest prefix: a peer that pads its varints only stalls (and times
    // out) its own stream
    this.held = prefixLength(buf.byteLength) + buf.byteLength
    this.buffered -= this.held
    if (this.buffered <= this.highWater && this.stream.readStatus === 'paused') this.stream.resume()
    if (buf.byteLength < 1) throw new MalformedFrameError('empty frame')
    return buf
  }

  /** Reads one MESSAGE frame; an ERROR frame becomes a thrown RemoteError. */
  async readMessage (options?: AbortOptions): Promise<unknown> {
    const frame = await this.readFrame(options)
    if (frame.kind === FrameKind.MESSAGE) return decodeMessage(frame.body)
    if (frame.kind === FrameKind.ERROR) throw decodeRemoteError(frame.body)
    throw new MalformedFrameError(`expected a message frame, got kind ${frame.kind}`)
  }

  /** Reads one DATA frame (raw bytes); an ERROR frame becomes a thrown RemoteError. */
  async readData (options?: AbortOptions): Promise<Uint8Array> {
    const frame = await this.readFrame(options)
    if (frame.kind === FrameKind.DATA) return frame.body
    if (frame.kind === FrameKind.ERROR) throw decodeRemoteError(frame.body)
    throw new MalformedFrameError(`expected a data frame, got kind ${frame.kind}`)
  }

  /**
   * Reads one DATA frame as the pieces the transport delivered: a chunk of a megabyte
   * is hashed and written piece by piece instead of being copied into one buffer first.
   */
  async readDataPieces (options: AbortOptions = {}): Promise<Uint8Array[]> {
    const list = await this.readFrameList(options)
    const kind = list.get(0)
    if (kind === FrameKind.DATA) return [...list.sublist(1)]
    if (kind === FrameKind.ERROR) throw decodeRemoteError(list.subarray(1))
    throw new MalformedFrameError(`expected a data frame, got kind ${kind}`)
  }

  async writeMessage (value: unknown, options?: AbortOptions): Promise<void> {
    await this.writeFrame(FrameKind.MESSAGE, encodeMessage(value), options)
  }

  /**
   * Sends a MESSAGE frame whose body is one dag-cbor value already encoded (in parts, as
   * they are): bytes signed elsewhere cross without being decoded and encoded again
   */
  async writeEncodedMessage (body: Uint8ArrayList, options?: AbortOptions): Promise<void> {
    await this.writeFrame(FrameKind.MESSAGE, body, options)
  }

  async writeData (bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    await this.writeFrame(FrameKind.DATA, bytes, options)
  }

  /** Sends a final error frame: the stable code, a bounded message, and the error's scalar details */
  async writeError (err: KeyfairError, options?: AbortOptions): Promise<void> {
    const message = err.message.slice(0, MAX_ERROR_MESSAGE)
    const details = scalarDetails(err.details)
    await this.writeFrame(FrameKind.ERROR, encodeMessage({ code: err.code, message, ...(details != null ? { details } : {}) }), options)
  }

  private async writeFrame (kind: number, body: Uint8Array | Uint8ArrayList, options?: AbortOptions): Promise<void> {
    if (body.byteLength + 1 > this.limits.maxFrameBytes) {
      throw new FrameTooLargeError(`refusing to send a ${body.byteLength + 1}-byte frame (max ${this.limits.maxFrameBytes})`)
    }
    // sent on the stream itself, not through the reader: a caller that has taken the reading
    // over (detachReader) still writes frames; the signal alone reaches libp2p
    if (!this.stream.send(new Uint8ArrayList(varint(body.byteLength + 1), Uint8Array.of(kind), body))) {
      await drained(this.stream, { signal: options?.signal })
    }
  }
}

export function decodeRemoteError (body: Uint8Array): RemoteError {
  const value = decodeMessage(body) as Record<string, unknown> | null
  const code = value?.code
  const message = value?.message
  if (typeof code !== 'string' || typeof message !== 'string' || code.length > 64) {
    throw new MalformedFrameError('error frame without a code and message')
  }
  const error = new RemoteError(message.slice(0, MAX_ERROR_MESSAGE), code)
  const details = scalarDetails(value?.details)
  if (details != null) error.details = details
  return error
}

/**
 * At most MAX_ERROR_DETAILS entries of safe integers, booleans and short strings under short
 * names: what an error frame carries beside its code (an escrow's balance and price, say)
 */
function scalarDetails (value: unknown): Record<string, number | string | boolean> | undefined {
  if (value == null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const out: Record<string, number | string | boolean> = {}
  for (const [name, v] of Object.entries(value).slice(0, MAX_ERROR_DETAILS)) {
    if (name.length > 32) continue
    if (Number.isSafeInteger(v) || typeof v === 'boolean') out[name] = v as number | boolean
    else if (typeof v === 'string' && v.length <= 128) out[name] = v
  }
  return Object.keys(out).length > 0 ? out : undefined
}
