// drained(): the next 'drain' of a libp2p stream, every time (libp2p's own onDrain() settles
// once per stream), refused by the caller's signal and by the stream closing
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { drained } from '../../protocols/toolkit/index.ts'
import { startLibp2p } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/keyfair/test-drain/1.0.0'
const MiB = 1024 * 1024

describe('drained()', function () {
  this.timeout(30_000)
  let server: Libp2p<BaseServices>
  let client: Libp2p<BaseServices>
  let inbound: Stream | undefined

  before(async function () {
    server = await startLibp2p()
    // holds each stream open and unread: the writer's window runs out
    await server.handle(PROTOCOL, (stream: Stream) => {
      inbound = stream
      stream.pause()
    })
    client = await startLibp2p()
  })

  after(async function () {
    await Promise.all([server, client].map(async n => n?.stop()))
  })

  /** writes until the stream refuses more, as a writer that must then wait */
  function fill (stream: Stream): void {
    for (let i = 0; i < 64 && stream.send(new Uint8Array(MiB)); i++);
  }

  it('resolves at each drain, and waits again after one', async function () {
    const stream = await client.dialProtocol(server.getMultiaddrs(), PROTOCOL)
    fill(stream)
    const first = drained(stream, { signal: AbortSignal.timeout(10_000) })
    inbound!.resume()
    await first
    // the reader stops again: the next wait must wait (libp2p's onDrain() would return at once);
    // window updates the reader sent before it stopped arrive first
    inbound!.pause()
    await sleep(300)
    fill(stream)
    await assert.rejects(drained(stream, { signal: AbortSignal.timeout(500) }), (err: Error) => err.name === 'TimeoutError')
    stream.abort(new Error('done'))
  })

  it('rejects with the caller\'s signal and when the stream closes', async function () {
    const stream = await client.dialProtocol(server.getMultiaddrs(), PROTOCOL)
    fill(stream)
    await assert.rejects(drained(stream, { signal: AbortSignal.abort(new Error('gone')) }), /gone/)
    const closing = drained(stream, { signal: AbortSignal.timeout(10_000) })
    stream.abort(new Error('reset by the writer'))
    await assert.rejects(closing, /reset by the writer/)
  })
})
