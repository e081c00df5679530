// A range's answer read as it arrives. The transport hands over each Noise message in fresh
// buffers; a frame reader keeps them until its whole frame is there and its reader asks, so
// chunks that wait for the disk wait in those buffers, outlive V8's young collections and
// fill the old generation, whose full collections then come every few megabytes. Here each
// DATA frame's bytes are copied, the moment they arrive, into a buffer the caller reuses
// chunk after chunk: the transport's buffers die young, and what waits sits in buffers that
// are never garbage.
import { decodeMessage, decodeRemoteError, Deadline, FrameKind } from '../toolkit/index.ts'
import { PrefixReader } from '../toolkit/prefix.ts'
import { AbortedError, BadMessageError, FrameTooLargeError, MalformedFrameError, ReadTimeoutError, TruncatedFrameError } from '../errors.ts'
import type { AbortOptions, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** the largest frame other than a chunk: the range's closing message or an error */
const MAX_SMALL_FRAME = 16 * 1024

export interface ChunkReceiverInit {
  /** largest frame, kind byte included */
  maxFrameBytes: number
  /** how long one read may wait for its whole frame */
  readTimeoutMs: number
  /** DATA frames the range may bring: one more is refused */
  chunks: number
  /** a buffer of at least `length` bytes for the next chunk, reused once the caller is done with it */
  take: (length: number) => Uint8Array
}

interface Received { kind: number, body: Uint8Array }

export class ChunkReceiver {
  private readonly stream: Stream
  private readonly init: ChunkReceiverInit
  private readonly ready: Received[] = []
  private waiter?: () => void
  private failure?: Error
  private ended = false
  private dataFrames = 0
  private closingFrames = 0
  private closed = false
  // the frame under way: its prefix, then its kind byte and body
  private readonly prefix = new PrefixReader()
  private frameLength = -1
  private kind = -1
  private body?: Uint8Array
  private filled = 0

  /** Parses everything `stream` delivers from now on; the stream's previous reader must have let go */
  constructor (stream: Stream, init: ChunkReceiverInit) {
    this.stream = stream
    this.init = init
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('remoteCloseWrite', this.onEnd)
    stream.addEventListener('close', this.onClose)
    // a peer that answers at once may have sent everything, and closed, before this receiver
    // listened: its end reached no one. The bytes the stream still holds come to this
    // receiver in a microtask queued by the listener above; the end follows them.
    if (stream.remoteWriteStatus === 'closed' || !['open', 'closing'].includes(stream.status)) queueMicrotask(this.onEnd)
  }

  /** The next chunk: a view of a buffer `take` gave, whole */
  async readChunk (options: AbortOptions = {}): Promise<Uint8Array> {
    const frame = await this.next(options)
    if (frame.kind === FrameKind.DATA) return frame.body
    if (frame.kind === FrameKind.ERROR) throw decodeRemoteError(frame.body)
    throw new MalformedFrameError(`expected a data frame, got kind ${frame.kind}`)
  }

  /** The message that closes the range */
  async readMessage (options: AbortOptions = {}): Promise<unknown> {
    const frame = await this.next(options)
    if (frame.kind === FrameKind.MESSAGE) return decodeMessage(frame.body)
    if (frame.kind === FrameKind.ERROR) throw decodeRemoteError(frame.body)
    throw new MalformedFrameError(`expected a message frame, got kind ${frame.kind}`)
  }

  /** Stops parsing: the stream's events reach this receiver no more */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('remoteCloseWrite', this.onEnd)
    this.stream.removeEventListener('close', this.onClose)
  }

  private async next (options: AbortOptions): Promise<Received> {
    const deadline = new Deadline(this.init.readTimeoutMs, options.signal)
    try {
      while (true) {
        const frame = this.ready.shift()
        if (frame != null) return frame
        if (this.failure != null) throw this.failure
        if (this.ended) throw new TruncatedFrameError()
        await this.arrival(deadline)
      }
    } finally {
      deadline.clear()
    }
  }

  /** Waits for a frame, the stream's end or a failure, within the read's time */
  private async arrival (deadline: Deadline): Promise<void> {
    const { signal } = deadline
    if (signal.aborted) throw this.why(deadline)
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiter = undefined
        reject(this.why(deadline))
      }
      this.waiter = () => {
        signal.removeEventListener('abort', onAbort)
        this.waiter = undefined
        resolve()
      }
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  private why (deadline: Deadline): Error {
    if (deadline.timedOut) return new ReadTimeoutError(`no frame within ${this.init.readTimeoutMs} ms`)
    return new AbortedError('read aborted by caller', { cause: deadline.signal.reason })
  }

  private wake (): void {
    this.waiter?.()
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    if (this.failure != null) return
    const data: Uint8Array | Uint8ArrayList = evt.data
    try {
      if (data instanceof Uint8Array) this.parse(data)
      else for (const piece of data) this.parse(piece)
    } catch (err) {
      this.fail(err as Error)
    }
  }

  private readonly onEnd = (): void => {
    this.ended = true
    this.wake()
  }

  private readonly onClose = (evt: StreamCloseEvent): void => {
    this.ended = true
    if (evt.error != null && this.failure == null && this.ready.length === 0) this.failure = evt.error
    this.wake()
  }

  private fail (err: Error): void {
    this.failure = err
    this.close()
    this.stream.abort(err)
    this.wake()
  }

  /** One piece of what arrived: prefix bytes, a kind byte and body bytes, across any split */
  private parse (piece: Uint8Array): void {
    let offset = 0
    while (offset < piece.length && this.failure == null) {
      if (this.frameLength < 0) {
        this.prefixByte(piece[offset++]!)
      } else if (this.kind < 0) {
        this.begin(piece[offset++]!)
      } else {
        const body = this.body!
        const take = Math.min(body.length - this.filled, piece.length - offset)
        body.set(piece.subarray(offset, offset + take), this.filled)
        this.filled += take
        offset += take
      }
      if (this.kind >= 0 && this.filled === this.body!.length) this.finish()
    }
  }

  private prefixByte (byte: number): void {
    const length = this.prefix.push(byte)
    if (length < 0) return
    if (length > this.init.maxFrameBytes) throw new FrameTooLargeError(`frame exceeds ${this.init.maxFrameBytes} bytes`)
    if (length < 1) throw new MalformedFrameError('empty frame')
    this.frameLength = length
  }

  /** The kind byte: where the body will go */
  private begin (kind: number): void {
    const length = this.frameLength - 1
    if (kind === FrameKind.DATA) {
      if (++this.dataFrames > this.init.chunks) throw new BadMessageError(`the provider sent more than the ${this.init.chunks} chunks asked for`)
      this.body = this.init.take(length).subarray(0, length)
    } else {
      // one message or error closes a range: more could only pile up unread
      if (++this.closingFrames > 1) throw new BadMessageError('the provider sent more than one closing frame')
      if (length > MAX_SMALL_FRAME) throw new FrameTooLargeError(`a frame of kind ${kind} exceeds ${MAX_SMALL_FRAME} bytes`)
      this.body = new Uint8Array(length)
    }
    this.kind = kind
    this.filled = 0
  }

  private finish (): void {
    this.ready.push({ kind: this.kind, body: this.body! })
    this.frameLength = -1
    this.kind = -1
    this.body = undefined
    this.wake()
  }
}
