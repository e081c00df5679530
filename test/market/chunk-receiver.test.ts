import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import * as lp from 'it-length-prefixed'
import { AbortedError, BadMessageError, FrameTooLargeError, ReadTimeoutError, RemoteError, TruncatedFrameError } from '../../protocols/errors.ts'
import { ChunkReceiver } from '../../protocols/market/chunk-receiver.ts'
import { FrameKind, FrameStream, encodeMessage } from '../../protocols/toolkit/index.ts'
import { startLibp2p } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/keyfair/test-chunks/1.0.0'
// long enough for a loaded machine to deliver what the server sends at once
const LIMITS = { maxFrameBytes: 64 * 1024, readTimeoutMs: 10_000 }
/** for the provider that stays silent: the read must give up */
const SILENT_TIMEOUT_MS = 400

function frame (kind: number, body: Uint8Array): Uint8Array {
  const framed = new Uint8Array(body.length + 1)
  framed[0] = kind
  framed.set(body, 1)
  return lp.encode.single(framed).subarray()
}

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

describe('ChunkReceiver: a range\'s answer parsed as it arrives, over real libp2p', function () {
  let server: Libp2p<BaseServices>
  let client: Libp2p<BaseServices>
  /** what the server sends next: bytes cut at these points, a pause between the pieces */
  let script: { bytes: Uint8Array, cuts: number[], close: 'close' | 'silent' } = { bytes: new Uint8Array(), cuts: [], close: 'close' }

  before(async function () {
    server = await startLibp2p()
    await server.handle(PROTOCOL, async (stream: Stream) => {
      const { bytes, cuts, close } = script
      const points = [0, ...cuts.filter(c => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]
      for (let i = 1; i < points.length; i++) {
        if (points[i] === points[i - 1]) continue
        stream.send(bytes.subarray(points[i - 1], points[i]))
        await sleep(1)
      }
      if (close === 'close') await stream.close().catch(() => {})
    }, { maxInboundStreams: 8 })
    client = await startLibp2p()
  })

  /** the streams a test opened: ended by the test, so the server's stream limit is never reached */
  const opened: Stream[] = []
  function endStreams (): void {
    for (const stream of opened.splice(0)) stream.abort(new Error('test done'))
  }

  afterEach(endStreams)

  after(async function () {
    await Promise.all([server, client].map(async n => n?.stop()))
  })

  /** a receiver for `chunks` chunks, each taken from a buffer the test counts */
  async function receive (chunks: number, given: Uint8Array[] = [], readTimeoutMs = LIMITS.readTimeoutMs, settleMs = 0): Promise<ChunkReceiver> {
    const stream = await client.dialProtocol(server.getMultiaddrs(), PROTOCOL, { signal: AbortSignal.timeout(5000) })
    // the server answers as soon as the protocol is agreed: given time, all of it (and its
    // end) arrives before anything reads
    if (settleMs > 0) await sleep(settleMs)
    const frames = new FrameStream(stream, LIMITS)
    opened.push(frames.stream)
    const receiver = new ChunkReceiver(frames.detachReader(), {
      ...LIMITS,
      readTimeoutMs,
      chunks,
      take: length => {
        const buffer = new Uint8Array(length + 7)
        given.push(buffer)
        return buffer
      }
    })
    // the request, written after the reading was taken over: the protocol is only agreed
    // on with the first bytes sent
    await frames.writeMessage({ v: 1 })
    return receiver
  }

  it('hands over each chunk whole, in the buffer it was given, however the bytes were split', async function () {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 3000 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(20_000), { maxLength: 12 }),
      async (chunks, cuts) => {
        script = { bytes: concat([...chunks.map(c => frame(FrameKind.DATA, c)), frame(FrameKind.MESSAGE, encodeMessage({ v: 1, sent: chunks.length }))]), cuts, close: 'close' }
        const given: Uint8Array[] = []
        const receiver = await receive(chunks.length, given)
        for (const [i, expected] of chunks.entries()) {
          const chunk = await receiver.readChunk()
          assert.deepEqual(chunk, expected)
          assert.equal(chunk.buffer, given[i]!.buffer, 'received into the buffer take gave')
        }
        assert.deepEqual(await receiver.readMessage(), { v: 1, sent: chunks.length })
        receiver.close()
        endStreams()
      }), { numRuns: 25 })
  })

  it('refuses a frame over the limit and one chunk more than asked, resetting the stream', async function () {
    script = { bytes: frame(FrameKind.DATA, new Uint8Array(LIMITS.maxFrameBytes)), cuts: [3], close: 'silent' }
    await assert.rejects((await receive(1)).readChunk(), FrameTooLargeError)
    script = { bytes: concat([frame(FrameKind.DATA, Uint8Array.of(1)), frame(FrameKind.DATA, Uint8Array.of(2))]), cuts: [], close: 'silent' }
    const receiver = await receive(1)
    await assert.rejects(async () => {
      await receiver.readChunk()
      await receiver.readChunk()
    }, BadMessageError)
    const closing = frame(FrameKind.MESSAGE, encodeMessage({ v: 1, sent: 0 }))
    script = { bytes: concat([closing, closing]), cuts: [], close: 'silent' }
    const flooded = await receive(0)
    await sleep(100)
    assert.deepEqual(await flooded.readMessage(), { v: 1, sent: 0 })
    await assert.rejects(flooded.readMessage(), BadMessageError, 'the second closing frame reset the stream')
  })

  it('ends with a typed error: a truncated frame, a silent provider, the caller\'s abort, a remote error', async function () {
    script = { bytes: frame(FrameKind.DATA, new Uint8Array(500)).subarray(0, 200), cuts: [], close: 'close' }
    await assert.rejects((await receive(1)).readChunk(), TruncatedFrameError)
    script = { bytes: new Uint8Array(), cuts: [], close: 'silent' }
    const started = Date.now()
    await assert.rejects((await receive(1, [], SILENT_TIMEOUT_MS)).readChunk(), ReadTimeoutError)
    assert.ok(Date.now() - started >= SILENT_TIMEOUT_MS - 50)
    await assert.rejects((await receive(1)).readChunk({ signal: AbortSignal.timeout(50) }), AbortedError)
    script = { bytes: frame(FrameKind.ERROR, encodeMessage({ code: 'ERR_UNKNOWN_CONTENT', message: 'no such content' })), cuts: [2], close: 'close' }
    await assert.rejects((await receive(1)).readChunk(), (err: any) => err instanceof RemoteError && err.code === 'ERR_UNKNOWN_CONTENT')
  })

  it('reads an answer, and its end, that arrived in full before the receiver listened', async function () {
    const chunk = Uint8Array.of(5, 6, 7)
    script = { bytes: concat([frame(FrameKind.DATA, chunk), frame(FrameKind.MESSAGE, encodeMessage({ v: 1, sent: 1 }))]), cuts: [], close: 'close' }
    const whole = await receive(1, [], LIMITS.readTimeoutMs, 300)
    assert.deepEqual(await whole.readChunk(), chunk)
    assert.deepEqual(await whole.readMessage(), { v: 1, sent: 1 })
    script = { bytes: frame(FrameKind.DATA, new Uint8Array(500)).subarray(0, 200), cuts: [], close: 'close' }
    const started = Date.now()
    await assert.rejects((await receive(1, [], LIMITS.readTimeoutMs, 300)).readChunk(), TruncatedFrameError)
    assert.ok(Date.now() - started < LIMITS.readTimeoutMs, 'the end was seen, not waited out')
  })
})
