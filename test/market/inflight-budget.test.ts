// The buyer's budget of chunk bytes in flight, on real node processes: a buyer whose disk is
// slow, and a buyer whose three providers race for the same chunks, each with a 1 MiB budget,
// buy the whole work while holding no more than the budget at once.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WRITE_DELAY_ENV } from '../../node/content/disk-delay.ts'
import { fileSha256 as sha, startMarketSwarm } from '../helpers/market-swarm.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { MarketSwarm } from '../helpers/market-swarm.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'inflight budget passphrase'
const BUDGET = 1024 * 1024
/** the work's chunks: 6 MiB and a little, in the default 1 MiB chunks */
const CHUNKS = 7
/** a buffer for each chunk the budget lets be in flight, and one more */
const MAX_BUFFERS = Math.ceil(BUDGET / (1024 * 1024)) + 1

const cli = swarmCli(PASSPHRASE)

describe('a purchase\'s chunk bytes in flight on real node processes', function () {
  this.timeout(300_000)
  let market: MarketSwarm
  let dir: string
  let work: string
  let offer: string
  let seller: SwarmNode, slow: SwarmNode, second: SwarmNode, racer: SwarmNode

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-inflight-'))
    market = await startMarketSwarm(PASSPHRASE, [
      // each chunk waits 150 ms before it is written: a disk far slower than the network
      { env: { [WRITE_DELAY_ENV]: '150' } },
      {},
      // the budget from the node's settings, not a flag
      { prepare: [['config', 'set', 'buyer.inflightBytes', String(BUDGET)]] }
    ])
    const [a, b, c] = market.buyers as [SwarmNode, SwarmNode, SwarmNode]
    seller = market.seller
    slow = a
    second = b
    racer = c
    work = join(dir, 'work.bin')
    await writeFile(work, randomBytes(6 * 1024 * 1024 + 321))
    offer = await market.publish(work, 'Ruby My Dear')
  })

  after(async function () {
    await market?.swarm.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses a budget under 64 KiB before anything is asked', async function () {
    await assert.rejects(cli(slow, 'buy', offer, '--yes', '--inflight-bytes', '1000'), { code: 'ERR_BAD_CONFIG' })
  })

  it('buys through a slow disk holding at most the budget', async function () {
    const out = join(dir, 'slow.out')
    const bought = await cli(slow, 'buy', offer, '--out', out, '--seed', '--inflight-bytes', String(BUDGET))
    assert.equal(await sha(out), await sha(work))
    // the disk was slow: each of the 7 chunks waited before it was written
    assert.ok(bought.timings.download >= 7 * 150, `downloaded in ${bought.timings.download} ms`)
    assert.equal(bought.inflightBudgetBytes, BUDGET)
    assert.ok(bought.peakInflightBytes > 0 && bought.peakInflightBytes <= BUDGET, `peak ${bought.peakInflightBytes} bytes`)
    // every chunk was received into one of a few buffers, used again and again
    assert.ok(bought.chunkBuffers >= 1 && bought.chunkBuffers <= MAX_BUFFERS && MAX_BUFFERS < CHUNKS, `${bought.chunkBuffers} chunk buffers`)
  })

  it('buys from three providers racing for the same chunks, holding at most the budget', async function () {
    await cli(second, 'buy', offer, '--out', join(dir, 'second.out'), '--seed')
    const out = join(dir, 'racer.out')
    const bought = await cli(racer, 'buy', offer, '--out', out, '--from', [seller, slow, second].map(n => n.peerId).join(','))
    assert.equal(await sha(out), await sha(work))
    assert.equal(bought.inflightBudgetBytes, BUDGET)
    assert.ok(bought.peakInflightBytes > 0 && bought.peakInflightBytes <= BUDGET, `peak ${bought.peakInflightBytes} bytes`)
    assert.ok(bought.sources.length >= 2, `sources ${JSON.stringify(bought.sources)}`)
    assert.ok(bought.chunkBuffers >= 1 && bought.chunkBuffers <= MAX_BUFFERS, `${bought.chunkBuffers} chunk buffers`)
  })
})
