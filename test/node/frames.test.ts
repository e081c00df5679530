import assert from 'node:assert/strict'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { equals } from 'uint8arrays/equals'
import { AbortedError, BadMessageError, FrameTooLargeError, KeyfairError, ReadTimeoutError, RemoteError, TruncatedFrameError } from '../../protocols/errors.ts'
import { FrameKind, FrameStream, expectRecord, expectString, serveFrames } from '../../protocols/toolkit/index.ts'
import { startLibp2p, waitFor } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import { logger } from '@libp2p/logger'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/keyfair/test-echo/1.0.0'
const LIMITS = { maxFrameBytes: 1024, readTimeoutMs: 400 }

describe('protocol toolkit over real libp2p (TCP + noise + yamux)', function () {
  let server: Libp2p<BaseServices>
  let alice: Libp2p<BaseServices>
  let bob: Libp2p<BaseServices>
  let served = 0

  before(async function () {
    server = await startLibp2p()
    // echo service: one request { text } -> { echo }, or a typed refusal for 'refuse'
    await server.handle(PROTOCOL, serveFrames(logger('keyfair:test'), LIMITS, async frames => {
      const request = expectRecord(await frames.readMessage())
      const text = expectString(request.text, 'text', 100)
      if (text === 'refuse') throw new BadMessageError('refused on request')
      await frames.writeMessage({ echo: text })
      served++
    }), { maxInboundStreams: 4 })
    alice = await startLibp2p()
    bob = await startLibp2p()
  })

  after(async function () {
    await Promise.all([server, alice, bob].map(async n => n?.stop()))
  })

  async function open (from: Libp2p<BaseServices>): Promise<Stream> {
    return from.dialProtocol(server.getMultiaddrs(), PROTOCOL, { signal: AbortSignal.timeout(5000) })
  }

  async function echo (from: Libp2p<BaseServices>, text: string): Promise<unknown> {
    const frames = new FrameStream(await open(from), LIMITS)
    await frames.writeMessage({ text })
    const reply = await frames.readMessage()
    await frames.stream.close()
    return reply
  }

  async function waitReset (stream: Stream): Promise<void> {
    await waitFor(() => stream.status === 'reset' || stream.status === 'aborted' || stream.status === 'closed', 3000, 'stream to end')
    assert.equal(stream.status, 'reset', 'the server resets the offending stream')
  }

  it('answers a well-formed request', async function () {
    assert.deepEqual(await echo(alice, 'hello'), { echo: 'hello' })
  })

  it('sends a typed error frame that the client reads as a RemoteError with a stable code', async function () {
    await assert.rejects(echo(alice, 'refuse'), (err: any) => {
      assert.ok(err instanceof RemoteError)
      assert.equal(err.code, 'ERR_BAD_MESSAGE')
      return true
    })
  })

  it('resets only the stream that sent an oversized frame; other peers and streams are still served', async function () {
    const bad = await open(alice)
    const good = new FrameStream(await open(alice), LIMITS)
    bad.send(lp.encode.single(new Uint8Array(LIMITS.maxFrameBytes + 1)))
    await waitReset(bad)
    // same connection, another stream, still fine; and another peer too
    await good.writeMessage({ text: 'same connection' })
    assert.deepEqual(await good.readMessage(), { echo: 'same connection' })
    await good.stream.close()
    assert.deepEqual(await echo(bob, 'other peer'), { echo: 'other peer' })
  })

  it('refuses to send an oversized frame locally', async function () {
    const frames = new FrameStream(await open(alice), LIMITS)
    await assert.rejects(frames.writeMessage({ text: 'x'.repeat(2000) }), FrameTooLargeError)
    frames.stream.abort(new Error('test done'))
  })

  it('resets a stalled peer after the read timeout while serving others meanwhile', async function () {
    const stalled = await open(alice)
    // half a frame: a length prefix promising 100 bytes, then 10 bytes, then silence
    const partial = lp.encode.single(new Uint8Array(100)).subarray()
    stalled.send(partial.subarray(0, 11))
    const before = served
    const started = Date.now()
    assert.deepEqual(await echo(bob, 'during the stall'), { echo: 'during the stall' })
    assert.equal(served, before + 1)
    await waitReset(stalled)
    const elapsed = Date.now() - started
    assert.ok(elapsed >= LIMITS.readTimeoutMs - 50, `reset after the timeout (${elapsed} ms)`)
    assert.ok(elapsed < LIMITS.readTimeoutMs + 2500, `reset soon after the timeout (${elapsed} ms)`)
  })

  it('resets a stream whose frame is truncated by a close', async function () {
    const truncated = await open(alice)
    const partial = lp.encode.single(new Uint8Array(100)).subarray()
    truncated.send(partial.subarray(0, 20))
    await truncated.close()
    await waitFor(() => truncated.status !== 'open', 3000, 'stream to end')
    assert.notEqual(truncated.readStatus, 'readable')
    assert.deepEqual(await echo(bob, 'after truncation'), { echo: 'after truncation' })
  })

  it('resets a stream whose frame body is not dag-cbor, or has an unknown kind', async function () {
    for (const body of [Uint8Array.of(FrameKind.MESSAGE, 0xff, 0xff, 0x00), Uint8Array.of(9, 1, 2, 3)]) {
      const stream = await open(alice)
      stream.send(lp.encode.single(body))
      await waitReset(stream)
    }
    assert.deepEqual(await echo(alice, 'still here'), { echo: 'still here' })
  })

  it('times out a client read against a silent server', async function () {
    await server.handle('/keyfair/test-silent/1.0.0', async () => { /* never answers */ })
    const stream = await alice.dialProtocol(server.getMultiaddrs(), '/keyfair/test-silent/1.0.0', { signal: AbortSignal.timeout(5000) })
    const frames = new FrameStream(stream, { maxFrameBytes: 1024, readTimeoutMs: 200 })
    await assert.rejects(frames.readMessage(), ReadTimeoutError)
    stream.abort(new Error('done'))
  })

  it('ends a read at once when its caller aborts, as aborted rather than timed out', async function () {
    await server.handle('/keyfair/test-silent-abort/1.0.0', async () => { /* never answers */ })
    const stream = await alice.dialProtocol(server.getMultiaddrs(), '/keyfair/test-silent-abort/1.0.0', { signal: AbortSignal.timeout(5000) })
    const frames = new FrameStream(stream, { maxFrameBytes: 1024, readTimeoutMs: 5000 })
    const caller = new AbortController()
    const started = performance.now()
    setTimeout(() => { caller.abort(new Error('the buyer stopped')) }, 50)
    await assert.rejects(frames.readMessage({ signal: caller.signal }), AbortedError)
    assert.ok(performance.now() - started < 2000, 'the caller\'s abort ends the read, not the read timeout')
    stream.abort(new Error('done'))
  })

  it('reports a stream closed before a frame as truncated', async function () {
    await server.handle('/keyfair/test-close/1.0.0', async (stream) => { await stream.close() })
    const stream = await alice.dialProtocol(server.getMultiaddrs(), '/keyfair/test-close/1.0.0', { signal: AbortSignal.timeout(5000) })
    const frames = new FrameStream(stream, LIMITS)
    await assert.rejects(frames.readMessage(), TruncatedFrameError)
  })

  it('enforces maxInboundStreams per connection', async function () {
    const held: Stream[] = []
    for (let i = 0; i < 4; i++) held.push(await open(alice))
    const extra = await open(alice)
    // the dial succeeds; the remote resets the stream over the limit
    await waitFor(() => extra.status !== 'open', 3000, 'extra stream to be refused')
    assert.equal(extra.status, 'reset')
    for (const s of held) s.abort(new Error('done'))
    await waitFor(async () => {
      try { return (await echo(alice, 'again') as any).echo === 'again' } catch { return false }
    }, 3000, 'slots to free up')
  })

  it('sends data frames without a CBOR copy', async function () {
    await server.handle('/keyfair/test-data/1.0.0', serveFrames(logger('keyfair:test'), { maxFrameBytes: 64 * 1024, readTimeoutMs: 1000 }, async frames => {
      const data = await frames.readData()
      await frames.writeData(new Uint8ArrayList(data, data).subarray())
    }))
    const stream = await alice.dialProtocol(server.getMultiaddrs(), '/keyfair/test-data/1.0.0', { signal: AbortSignal.timeout(5000) })
    const frames = new FrameStream(stream, { maxFrameBytes: 64 * 1024, readTimeoutMs: 1000 })
    const data = crypto.getRandomValues(new Uint8Array(20_000))
    await frames.writeData(data)
    const back = await frames.readData()
    assert.equal(back.byteLength, 40_000)
    assert.ok(equals(back.subarray(0, 20_000), data) && equals(back.subarray(20_000), data), 'both copies arrive intact')
    await stream.close()
  })

  it('reads a data frame as the pieces it arrived in, and an error frame as a RemoteError', async function () {
    const limits = { maxFrameBytes: 1024 * 1024, readTimeoutMs: 2000 }
    await server.handle('/keyfair/test-pieces/1.0.0', serveFrames(logger('keyfair:test'), limits, async frames => {
      const data = await frames.readData()
      await frames.writeData(data)
      await frames.writeError(new KeyfairError('no more', 'ERR_NO_MORE'))
    }))
    const stream = await alice.dialProtocol(server.getMultiaddrs(), '/keyfair/test-pieces/1.0.0', { signal: AbortSignal.timeout(5000) })
    const frames = new FrameStream(stream, limits)
    // larger than a noise message, so it crosses the wire in several pieces
    const data = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff)
    await frames.writeData(data)
    const pieces = await frames.readDataPieces()
    assert.ok(pieces.length > 1, `arrived in ${pieces.length} piece(s)`)
    assert.ok(equals(new Uint8ArrayList(...pieces).subarray(), data), 'the pieces join to the data sent')
    await assert.rejects(frames.readDataPieces(), { name: 'RemoteError', code: 'ERR_NO_MORE' })
    await stream.close()
  })
})
