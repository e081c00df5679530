// Which provider a download rests, on real node processes: a buyer asks three providers for a
// work, one of which reads every chunk it serves slowly; the download rests that one and takes
// the work from the other two.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { READ_DELAY_ENV } from '../../node/content/disk-delay.ts'
import { fileSha256 as sha, startMarketSwarm } from '../helpers/market-swarm.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { MarketSwarm } from '../helpers/market-swarm.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'provider rest passphrase'
const MiB = 1024 * 1024
/** what the slow provider waits before it reads each 1 MiB chunk it serves */
const SLOW_READ_MS = 300

const cli = swarmCli(PASSPHRASE)

describe('a download from three providers, one of them slow, on real node processes', function () {
  this.timeout(300_000)
  let market: MarketSwarm
  let dir: string
  let work: string
  let offer: string
  let seller: SwarmNode, slow: SwarmNode, seeder: SwarmNode, buyer: SwarmNode

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-rest-'))
    market = await startMarketSwarm(PASSPHRASE, [{ env: { [READ_DELAY_ENV]: String(SLOW_READ_MS) } }, {}, {}])
    const [a, b, c] = market.buyers as [SwarmNode, SwarmNode, SwarmNode]
    seller = market.seller
    slow = a
    seeder = b
    buyer = c
    work = join(dir, 'work.bin')
    await writeFile(work, randomBytes(40 * MiB + 77))
    offer = await market.publish(work, 'Epistrophy')
    // the two seeders take the work from the seller, whose reads are not delayed
    for (const node of [slow, seeder]) await cli(node, 'buy', offer, '--yes', '--seed', '--from', seller.peerId)
  })

  after(async function () {
    await market?.swarm.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('rests the slow provider and takes the work from the others', async function () {
    const out = join(dir, 'bought.out')
    // every collection counts: a forced young one that finds V8's incremental marking done runs as a full one
    const collections = async (): Promise<number> => {
      const { memory } = await cli(seller, 'status')
      return memory.youngCollections + memory.fullCollections
    }
    const before = await collections()
    const bought = await cli(buyer, 'buy', offer, '--yes', '--out', out, '--from', [seller, slow, seeder].map(n => n.peerId).join(','))
    assert.equal(await sha(out), await sha(work))
    const source = (node: SwarmNode): { bytes: number, rested: boolean } | undefined => bought.sources.find((s: { provider: string }) => s.provider === node.peerId)
    const detail = JSON.stringify(bought.sources)
    assert.equal(source(slow)?.rested, true, `the slow provider was not rested: ${detail}`)
    assert.deepEqual(bought.dropped, [], `dropped: ${JSON.stringify(bought.dropped)}`)
    // it served only what it was asked for before its rest: less than either fast provider
    for (const fast of [seller, seeder]) assert.ok((source(slow)?.bytes ?? 0) < (source(fast)?.bytes ?? 0), `sources ${detail}`)
    // a provider collects its young generation every 2 MiB it serves: its file reads and Noise
    // encryption leave garbage at that pace (its 16 MiB young generation alone would not fill)
    await sleep(100)
    const ran = await collections() - before
    const served = source(seller)?.bytes ?? 0
    assert.ok(ran >= Math.floor(served / (2 * MiB)) - 1, `${ran} collections while serving ${served} bytes`)
  })
})
