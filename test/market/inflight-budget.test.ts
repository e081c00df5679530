// The buyer's budget of chunk bytes in flight, on real node processes: a buyer whose disk is
// slow, and a buyer whose three providers race for the same chunks, each with a 1 MiB budget,
// buy the whole work while holding no more than the budget at once.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm } from '../../scripts/swarm.ts'
import { WRITE_DELAY_ENV } from '../../node/content/disk-delay.ts'
import { FAST_KDF } from '../helpers/keys.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'inflight budget passphrase'
const BUDGET = 1024 * 1024
/** the work's chunks: 6 MiB and a little, in the default 1 MiB chunks */
const CHUNKS = 7
/** a buffer for each chunk the budget lets be in flight, and one more */
const MAX_BUFFERS = Math.ceil(BUDGET / (1024 * 1024)) + 1

const cli = swarmCli(PASSPHRASE)

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')

describe('a purchase\'s chunk bytes in flight on real node processes', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string
  let work: string
  let offer: string
  let seller: SwarmNode, slow: SwarmNode, second: SwarmNode, racer: SwarmNode

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-inflight-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE, KEYFAIR_KDF_N: String(FAST_KDF.N) },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
        { roles: ['seller'] },
        // each chunk waits 150 ms before it is written: a disk far slower than the network
        { roles: ['buyer'], env: { [WRITE_DELAY_ENV]: '150' } },
        { roles: ['buyer'] },
        // the budget from the node's settings, not a flag
        { roles: ['buyer'], prepare: [['config', 'set', 'buyer.inflightBytes', String(BUDGET)]] }
      ]
    })
    const [agency, escrow, s, a, b, c] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
    seller = s
    slow = a
    second = b
    racer = c
    const agencyAddr = agency.addresses[0]!
    const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
    await cli(escrow, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
    await cli(seller, 'trust', '--agency', agencyAddr)
    for (const buyer of [slow, second, racer]) {
      await cli(buyer, 'device', 'init', '--bits', '2048')
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
      await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)
      await cli(escrow, 'escrow', 'deposit', buyer.peerId, '1000')
    }
    work = join(dir, 'work.bin')
    await writeFile(work, randomBytes(6 * 1024 * 1024 + 321))
    offer = (await cli(seller, 'publish', work, '--title', 'Ruby My Dear', '--tags', 'piano', '--price', '10', '--escrows', '1-of-1', '--escrow', escrow.addresses[0]!)).offer
  })

  after(async function () {
    await swarm?.stop()
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
