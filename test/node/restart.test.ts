// Every role survives a restart of its process: an agency, two escrows, a seller and a
// buyer as real node processes; after each role's process is stopped and started again on
// its repo, publish, search, buy and confirm (and, after the agency's, a new device's
// enrolment) succeed through the CLI at the first try.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm } from '../../scripts/swarm.ts'
import { FAST_KDF } from '../helpers/keys.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'restart passphrase'
const PRICE = 20
const cli = swarmCli(PASSPHRASE)

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')

describe('restarting each role\'s process', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-restart-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE, KEYFAIR_KDF_N: String(FAST_KDF.N) },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
        { roles: ['seller'] },
        { roles: ['buyer'] },
        { roles: ['buyer'] }
      ]
    })
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('publishes, finds, buys, confirms and enrols at the first try after each restart', async function () {
    const node = (i: number): SwarmNode => swarm.nodes[i]!
    const [AGENCY, E1, E2, SELLER, BUYER, NEWCOMER] = [0, 1, 2, 3, 4, 5]
    const agencyAddr = node(AGENCY).addresses[0]!
    for (const e of [E1, E2]) {
      const { code } = await cli(node(AGENCY), 'agency', 'enroll-code', '--for', 'escrow')
      await cli(node(e), 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
      await cli(node(e), 'escrow', 'deposit', node(BUYER).peerId, '10000')
    }
    await cli(node(SELLER), 'trust', '--agency', agencyAddr)
    await cli(node(BUYER), 'device', 'init', '--bits', '2048')
    const { code } = await cli(node(AGENCY), 'agency', 'enroll-code', '--for', 'device')
    await cli(node(BUYER), 'device', 'enroll', '--agency', agencyAddr, '--code', code)

    let round = 0
    const market = async (after: string): Promise<{ offer: string, content: string }> => {
      round++
      const work = join(dir, `work-${round}.bin`)
      await writeFile(work, randomBytes(2 * 1024 * 1024 + round))
      const tag = `restart${round}`
      const escrows = [E1, E2].flatMap(e => ['--escrow', node(e).addresses[0]!])
      const published = await cli(node(SELLER), 'publish', work, '--title', `After ${after}`, '--tags', tag, '--price', String(PRICE), '--escrows', '2-of-2', ...escrows)
        .catch((err: any) => { throw new Error(`publish after the ${after} restarted: ${String(err.code)} ${String(err.message)}`) })
      const found = await cli(node(BUYER), 'search', tag)
      assert.ok(found.offers.some((o: any) => o.offer === published.offer), `search after the ${after} restarted: ${JSON.stringify(found)}`)
      const out = join(dir, `out-${round}.bin`)
      const bought = await cli(node(BUYER), 'buy', published.offer, '--out', out)
        .catch((err: any) => { throw new Error(`buy after the ${after} restarted: ${String(err.code)} ${String(err.message)}`) })
      assert.equal(await sha(out), await sha(work))
      assert.deepEqual(bought.escrows.map((e: any) => e.outcome), ['accepted', 'accepted'])
      const confirmed = await cli(node(BUYER), 'confirm', bought.purchase)
      assert.ok(confirmed.escrows.every((e: any) => e.state === 'released'), `confirm after the ${after} restarted: ${JSON.stringify(confirmed)}`)
      return { offer: published.offer, content: published.content }
    }

    const first = await market('nothing')
    for (const [name, indices] of [['seller', [SELLER]], ['buyer', [BUYER]], ['escrows', [E1, E2]], ['agency', [AGENCY]]] as const) {
      for (const i of indices) {
        await swarm.stopNode(i)
        await swarm.restartNode(i)
      }
      await market(name)
    }

    // every process at once, as after a reboot: the agency first, the buyer last
    for (const i of [AGENCY, E1, E2, SELLER, BUYER]) await swarm.stopNode(i)
    for (const i of [AGENCY, E1, E2, SELLER, BUYER]) await swarm.restartNode(i)
    await market('whole marketplace')

    // a device enrols with the restarted agency
    await cli(node(NEWCOMER), 'device', 'init', '--bits', '2048')
    const fresh = await cli(node(AGENCY), 'agency', 'enroll-code', '--for', 'device')
    const enrolled = await cli(node(NEWCOMER), 'device', 'enroll', '--agency', agencyAddr, '--code', fresh.code)
    assert.match(enrolled.deviceId, /\S/)
    assert.equal((await cli(node(NEWCOMER), 'device', 'status')).revocation.state, 'valid')

    // the wrong thing given says what to give instead
    await assert.rejects(cli(node(SELLER), 'publish', dir, '--title', 'A folder', '--price', '1', '--escrow', node(E1).addresses[0]!),
      { code: 'ERR_FILE', message: `${dir} is a directory; publish one file` })
    await assert.rejects(cli(node(BUYER), 'play', first.offer, '--out', join(dir, 'never.bin')),
      { code: 'ERR_OFFER_ID_GIVEN', message: `${first.offer} is an offer id; play takes the content id: keyfair play ${first.content}` })
  })
})
