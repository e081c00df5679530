/**
 * /keyfair/content/1.0.0 (docs/protocol.md, Protocols): a content's manifest, then ranges of its stored
 * chunks as raw DATA frames. Anyone holding the complete ciphertext serves it; the
 * caller checks every chunk against the manifest (whose CID is the content id), so a
 * provider needs no trust. Ranges let a buyer resume and spread a download over
 * several providers.
 */
import { CID } from 'multiformats/cid'
import { MAX_CHUNK_SIZE } from '../../device/crypto/index.ts'
import { BadMessageError, KeyfairError } from '../errors.ts'
import { FramedService, expectRecord, expectUint, withFrames } from '../toolkit/index.ts'
import { ChunkReceiver } from './chunk-receiver.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const CONTENT_PROTOCOL = '/keyfair/content/1.0.0'
/** Chunks per request: enough to keep a stream busy, few enough to spread over providers */
export const MAX_RANGE = 64

export const CONTENT_LIMITS: ProtocolLimits = {
  // one stored chunk (or a manifest of up to ~500 000 chunks) and the frame envelope
  maxFrameBytes: MAX_CHUNK_SIZE + 4096,
  // a request names a CID and a range: a provider never buffers a chunk's worth from a caller
  maxRequestBytes: 4096,
  readTimeoutMs: 30_000,
  maxInboundStreams: 64,
  maxOutboundStreams: 64
}

/** What a node serves from: complete contents only */
export interface ContentSource {
  manifestBytes: (cid: string) => Promise<Uint8Array | undefined>
  chunkCount: (cid: string) => Promise<number | undefined>
  /** stored chunks from..to−1 in order, read through one open file */
  readChunks: (cid: string, from: number, to: number) => AsyncIterable<Uint8Array>
}

export class ContentService extends FramedService {
  readonly protocol = CONTENT_PROTOCOL
  private readonly source: ContentSource

  constructor (components: FramedServiceComponents, init: { source: ContentSource, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:content', { ...CONTENT_LIMITS, ...init.limits })
    this.source = init.source
  }

  protected async handle (frames: FrameStream): Promise<void> {
    const request = expectRecord(await frames.readMessage())
    if (request.v !== 1) throw new BadMessageError('unsupported version')
    const cid = CID.asCID(request.content)
    if (cid == null) throw new BadMessageError('content must be a CID')
    const content = cid.toString()
    const count = await this.source.chunkCount(content)
    if (count == null) throw new UnknownContentError(content)
    if (request.manifest === true) {
      await frames.writeData((await this.source.manifestBytes(content))!)
      return
    }
    const from = expectUint(request.from, 'from', count - 1)
    const n = expectUint(request.count, 'count', MAX_RANGE)
    const to = Math.min(count, from + n)
    for await (const chunk of this.source.readChunks(content, from, to)) await frames.writeData(chunk)
    await frames.writeMessage({ v: 1, sent: to - from })
  }
}

/** This node holds no such content: the provider's refusal and the store's answer alike */
export class UnknownContentError extends KeyfairError {
  static readonly code = 'ERR_UNKNOWN_CONTENT'
  constructor (cid: string) {
    super(`this node holds no content ${cid}`, UnknownContentError.code)
  }
}

/** The manifest bytes as the provider sent them; the caller checks their CID */
export async function fetchManifest (components: { connectionManager: StreamOpener }, provider: PeerId | Multiaddr | Multiaddr[], cid: CID, options: AbortOptions = {}): Promise<Uint8Array> {
  return withFrames(components.connectionManager, provider, CONTENT_PROTOCOL, CONTENT_LIMITS, async frames => {
    await frames.writeMessage({ v: 1, content: cid, manifest: true }, options)
    return frames.readData(options)
  }, options)
}

export interface FetchChunksOptions extends AbortOptions {
  /** a buffer of at least `length` bytes to receive the next chunk into (default: a new one) */
  take?: (length: number) => Uint8Array
}

/**
 * Chunks from..from+count−1, each handed to `onChunk` once whole (unverified: the caller
 * checks), received into buffers from `take` as its bytes arrive
 */
export async function fetchChunks (
  components: { connectionManager: StreamOpener },
  provider: PeerId | Multiaddr | Multiaddr[],
  cid: CID,
  range: { from: number, count: number },
  onChunk: (index: number, chunk: Uint8Array) => Promise<void>,
  options: FetchChunksOptions = {}
): Promise<void> {
  const take = options.take ?? ((length: number) => new Uint8Array(length))
  await withFrames(components.connectionManager, provider, CONTENT_PROTOCOL, CONTENT_LIMITS, async frames => {
    // the reading is taken over before the request goes: nothing of the answer is ever
    // buffered anywhere but in the chunks' own buffers
    const receiver = new ChunkReceiver(frames.detachReader(), { ...CONTENT_LIMITS, chunks: range.count, take })
    try {
      await frames.writeMessage({ v: 1, content: cid, from: range.from, count: range.count }, options)
      for (let i = 0; i < range.count; i++) await onChunk(range.from + i, await receiver.readChunk(options))
      const done = expectRecord(await receiver.readMessage(options), 'range end')
      if (done.sent !== range.count) throw new BadMessageError(`the provider sent ${String(done.sent)} of ${range.count} chunks`)
    } finally {
      receiver.close()
    }
  }, { signal: options.signal })
}
