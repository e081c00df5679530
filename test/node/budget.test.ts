import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { logger } from '@libp2p/logger'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { FrameStream, drained, expectRecord, expectString, serveFrames } from '../../protocols/toolkit/index.ts'
import { unsignedVarint, waitFor } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { InboundBudgetSettings } from '../../protocols/toolkit/index.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/keyfair/test-budget/1.0.0'
const MiB = 1024 * 1024
const LIMITS = { maxFrameBytes: 8 * MiB, readTimeoutMs: 30_000 }

async function node (inbound?: Partial<InboundBudgetSettings>): Promise<Libp2p<BaseServices>> {
  const n = await createKeyfairLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], services: {}, inbound })
  await n.start()
  return n
}

describe('inbound budget over real libp2p', function () {
  this.timeout(60_000)
  let server: Libp2p<BaseServices>
  const peers: Array<Libp2p<BaseServices>> = []
  let served = 0

  before(async function () {
    // 4 MiB in all, 2 MiB a peer; tight above 2 MiB, a frame stalled after 300 ms
    server = await node({ maxBytes: 4 * MiB, maxPeerBytes: 2 * MiB, tightFraction: 0.5, stallMs: 300, sweepMs: 100 })
    await server.handle(PROTOCOL, serveFrames(logger('keyfair:test'), LIMITS, async frames => {
      const request = expectRecord(await frames.readMessage())
      await frames.writeMessage({ echo: expectString(request.text, 'text', 100) })
      served++
    }, { budget: server.services.inboundBudget }), { maxInboundStreams: 64 })
    for (let i = 0; i < 4; i++) peers.push(await node())
  })

  after(async function () {
    await Promise.all([server, ...peers].map(async n => n?.stop()))
  })

  const open = async (from: Libp2p<BaseServices>): Promise<Stream> => from.dialProtocol(server.getMultiaddrs(), PROTOCOL, { signal: AbortSignal.timeout(5000) })

  async function echo (from: Libp2p<BaseServices>, text: string): Promise<unknown> {
    const frames = new FrameStream(await open(from), LIMITS)
    await frames.writeMessage({ text })
    const reply = await frames.readMessage({ signal: AbortSignal.timeout(5000) })
    await frames.stream.close()
    return reply
  }

  /** the prefix of an 8 MiB frame and `bytes` of its body, the rest withheld */
  async function stall (from: Libp2p<BaseServices>, bytes: number): Promise<Stream> {
    const stream = await open(from)
    stream.send(unsignedVarint(8 * MiB))
    const piece = new Uint8Array(64 * 1024)
    for (let sent = 0; sent < bytes && stream.status === 'open'; sent += piece.byteLength) {
      if (!stream.send(piece)) await drained(stream, { signal: AbortSignal.timeout(5000) }).catch(() => {})
    }
    return stream
  }

  const budget = (): ReturnType<Libp2p<BaseServices>['services']['inboundBudget']['stats']> => server.services.inboundBudget.stats()

  it('resets a peer over its share first, keeps the node under its ceiling, and serves small requests meanwhile', async function () {
    const attacker = peers[0]!
    // three streams of 1.5 MiB each from one peer: its share is 2 MiB
    const streams = await Promise.all([0, 1, 2].map(async () => stall(attacker, 1.5 * MiB)))
    await waitFor(() => streams.filter(s => s.status === 'reset').length >= 2, 10_000, 'the attacker\'s streams over its share to be reset')
    assert.ok(budget().peak <= 4 * MiB, `peak ${budget().peak} within the node's ceiling`)
    assert.ok(budget().overBudget >= 2)
    // other peers fill the node: the heaviest loses streams, small requests still pass
    const others = await Promise.all(peers.slice(1, 3).map(async p => stall(p, 1.9 * MiB)))
    assert.deepEqual(await echo(peers[3]!, 'still served'), { echo: 'still served' })
    assert.ok(budget().peak <= 4 * MiB + 64 * 1024, `peak ${budget().peak}`)
    for (const s of [...streams, ...others]) s.abort(new Error('done'))
    await waitFor(() => budget().bytes === 0, 5000, 'every byte to be released')
  })

  it('drops stalled frames well before the read timeout while memory is tight, and only then', async function () {
    const before = budget().stalled
    // 1 MiB held: under the tight mark, so the frame waits for its read timeout
    const calm = await stall(peers[0]!, 1 * MiB)
    await new Promise(resolve => setTimeout(resolve, 800))
    assert.equal(calm.status, 'open', 'a stalled frame is kept while memory is not tight')
    // 1.5 MiB more from another peer: above 2 MiB the stalled frame goes within stallMs
    const t0 = Date.now()
    const more = await stall(peers[1]!, 1.5 * MiB)
    await waitFor(() => calm.status === 'reset', 5000, 'the stalled frame to be dropped')
    assert.ok(Date.now() - t0 < 3000, 'long before the 30 s read timeout')
    assert.equal(budget().stalled, before + 1)
    // with it gone memory is no longer tight: the other stalled frame is kept
    await new Promise(resolve => setTimeout(resolve, 800))
    assert.equal(more.status, 'open')
    assert.equal(budget().bytes, 1.5 * MiB + 4)
    more.abort(new Error('done'))
    await waitFor(() => budget().bytes === 0, 5000, 'every byte to be released')
    assert.deepEqual(await echo(peers[2]!, 'after'), { echo: 'after' })
    assert.ok(served >= 2)
  })

  it('refuses a frame longer than the protocol\'s request limit on its prefix alone', async function () {
    const handled: string[] = []
    await server.handle('/keyfair/test-small/1.0.0', serveFrames(logger('keyfair:test'), { ...LIMITS, maxRequestBytes: 1024 }, async frames => {
      handled.push(String(expectRecord(await frames.readMessage()).text))
    }, { budget: server.services.inboundBudget }))
    const stream = await peers[0]!.dialProtocol(server.getMultiaddrs(), '/keyfair/test-small/1.0.0', { signal: AbortSignal.timeout(5000) })
    stream.send(unsignedVarint(1025))
    await waitFor(() => stream.status !== 'open', 5000, 'the stream to be reset')
    assert.equal(stream.status, 'reset')
    assert.deepEqual(handled, [])
  })
})
