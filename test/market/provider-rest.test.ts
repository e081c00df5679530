// Which provider a download rests, on real node processes: a buyer asks three providers for a
// work, one of which reads every chunk it serves slowly; the download rests that one and takes
// the work from the other two.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Swarm } from '../../scripts/swarm.ts'
import { READ_DELAY_ENV } from '../../node/content/disk-delay.ts'
import { FAST_KDF } from '../helpers/keys.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'provider rest passphrase'
const MiB = 1024 * 1024
/** what the slow provider waits before it reads each 1 MiB chunk it serves */
const SLOW_READ_MS = 300

const cli = swarmCli(PASSPHRASE)

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')

describe('a download from three providers, one of them slow, on real node processes', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string
  let work: string
  let offer: string
  let seller: SwarmNode, slow: SwarmNode, seeder: SwarmNode, buyer: SwarmNode

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-rest-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE, KEYFAIR_KDF_N: String(FAST_KDF.N) },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
        { roles: ['seller'] },
        { roles: ['buyer'], env: { [READ_DELAY_ENV]: String(SLOW_READ_MS) } },
        { roles: ['buyer'] },
        { roles: ['buyer'] }
      ]
    })
    const [agency, escrow, s, a, b, c] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
    seller = s
    slow = a
    seeder = b
    buyer = c
    const agencyAddr = agency.addresses[0]!
    const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
    await cli(escrow, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
    await cli(seller, 'trust', '--agency', agencyAddr)
    for (const node of [slow, seeder, buyer]) {
      await cli(node, 'device', 'init', '--bits', '2048')
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
      await cli(node, 'device', 'enroll', '--agency', agencyAddr, '--code', code)
      await cli(escrow, 'escrow', 'deposit', node.peerId, '1000')
    }
    work = join(dir, 'work.bin')
    await writeFile(work, randomBytes(40 * MiB + 77))
    offer = (await cli(seller, 'publish', work, '--title', 'Epistrophy', '--tags', 'piano', '--price', '10', '--escrows', '1-of-1', '--escrow', escrow.addresses[0]!)).offer
    // the two seeders take the work from the seller, whose reads are not delayed
    for (const node of [slow, seeder]) await cli(node, 'buy', offer, '--yes', '--seed', '--from', seller.peerId)
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('rests the slow provider and takes the work from the others', async function () {
    const out = join(dir, 'bought.out')
    const youngBefore = (await cli(seller, 'status')).memory.youngCollections
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
    const young = (await cli(seller, 'status')).memory.youngCollections - youngBefore
    const served = source(seller)?.bytes ?? 0
    assert.ok(young >= Math.floor(served / (2 * MiB)) - 1, `${young} young collections while serving ${served} bytes`)
  })
})
