// Flow control of FrameStream over real libp2p (TCP + noise + yamux): a reader that falls
// behind its sender (a chunk write waiting on a slow disk) makes the sender wait, instead
// of overflowing the reader's buffer and losing the stream.
import assert from 'node:assert/strict'
import { FrameStream } from '../../protocols/toolkit/index.ts'
import { startLibp2p } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/keyfair/test-flow/1.0.0'
const MiB = 1024 * 1024
const FRAMES = 16
const LIMITS = { maxFrameBytes: MiB + 4096, readTimeoutMs: 10_000 }

describe('frame flow control over real libp2p', function () {
  this.timeout(60_000)
  let server: Libp2p<BaseServices>
  let client: Libp2p<BaseServices>
  let sent = 0

  before(async function () {
    server = await startLibp2p()
    // on any byte from the reader: FRAMES data frames of 1 MiB, frame i filled with i
    await server.handle(PROTOCOL, async (stream: Stream) => {
      const frames = new FrameStream(stream, LIMITS)
      await frames.readData()
      for (let i = 0; i < FRAMES; i++) {
        await frames.writeData(new Uint8Array(MiB).fill(i))
        sent = i + 1
      }
      await stream.close()
    })
    client = await startLibp2p()
  })

  after(async function () {
    await Promise.all([server, client].map(async n => n?.stop()))
  })

  it('holds the sender back while the reader pauses, and loses nothing', async function () {
    const frames = new FrameStream(await client.dialProtocol(server.getMultiaddrs(), PROTOCOL), LIMITS)
    await frames.writeData(Uint8Array.of(1))
    const first = await frames.readData()
    assert.equal(first.byteLength, MiB)
    // a reader busy for a while: 15 MiB more are ready to go
    await new Promise(resolve => setTimeout(resolve, 1500))
    // the sender got out what the reader holds (one frame), what the paused stream holds
    // (at most its window of 4 MiB) and what sockets hold: not the whole 16 MiB
    assert.ok(sent < FRAMES - 4, `the sender sent ${sent} of ${FRAMES} frames while the reader paused`)
    for (let i = 1; i < FRAMES; i++) {
      const pieces = await frames.readDataPieces()
      assert.equal(pieces.reduce((n, p) => n + p.byteLength, 0), MiB)
      assert.ok(pieces.every(p => p.every(b => b === i)), `frame ${i} arrived intact`)
    }
    assert.equal(sent, FRAMES)
  })
})
