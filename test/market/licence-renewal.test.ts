// A licence's offline lifetime over real node processes driven through the CLI: past
// it, the work does not play while no escrow can be reached; an escrow's statement
// renews it (explicitly, or when play finds it expired); a revoked device's renewal
// is refused with the escrow's reason.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm } from '../../scripts/swarm.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'licence renewal passphrase'
const TTL_S = 6

const cli = swarmCli(PASSPHRASE)

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, Math.max(0, ms)))

describe('licence lifetime and renewal over real node processes', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-renewal-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
        { roles: ['seller'] },
        { roles: ['buyer'] }
      ]
    })
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses to play past the lifetime offline, renews online, and refuses a revoked device', async function () {
    const [agency, e1, e2, seller, buyer] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
    const agencyAddr = agency.addresses[0]!
    for (const e of [e1, e2]) {
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
      await cli(e, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
      await cli(e, 'escrow', 'deposit', buyer.peerId, '1000')
    }
    await cli(seller, 'trust', '--agency', agencyAddr)
    await cli(buyer, 'device', 'init', '--bits', '2048')
    const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
    await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)

    const work = join(dir, 'work.bin')
    await writeFile(work, randomBytes(1024 * 1024 + 9))
    const published = await cli(seller, 'publish', work, '--title', 'Short Lease', '--price', '10', '--escrows', '1-of-2', '--licence-ttl', `${TTL_S}s`, '--escrow', e1.addresses[0]!, '--escrow', e2.addresses[0]!)
    assert.equal(published.licenceTtlMs, TTL_S * 1000)
    assert.equal((await cli(buyer, 'search', 'lease')).offers[0]?.licenceTtlMs, TTL_S * 1000)
    const bought = await cli(buyer, 'buy', published.offer, '--out', join(dir, 'bought.out'))
    const [licence] = (await cli(buyer, 'library')).licences
    assert.equal(licence.content, published.content)
    assert.equal(licence.playUntil - licence.purchasedAt, TTL_S * 1000)
    await cli(buyer, 'confirm', bought.purchase)

    // past the lifetime with every escrow down: no play, nothing written
    await sleep(licence.playUntil - Date.now() + 100)
    for (const e of [e1, e2]) await swarm.stopNode(e.index)
    const offline = join(dir, 'offline.out')
    await assert.rejects(cli(buyer, 'play', published.content, '--out', offline), { code: 'ERR_LICENCE_EXPIRED' })
    await assert.rejects(stat(offline), { code: 'ENOENT' })

    // online again: renewal extends it by the lifetime
    for (const e of [e1, e2]) await swarm.restartNode(e.index, { nodes: [], env: { KEYFAIR_PASSPHRASE: PASSPHRASE } })
    const before = Date.now()
    const renewed = await cli(buyer, 'renew', published.content)
    assert.ok(renewed.renewedAt >= before && renewed.playUntil === renewed.renewedAt + TTL_S * 1000, JSON.stringify(renewed))
    assert.ok([e1.peerId, e2.peerId].includes(renewed.escrow))
    const played = join(dir, 'played.out')
    await cli(buyer, 'play', published.content, '--out', played)
    assert.deepEqual(await readFile(played), await readFile(work))

    // expired again: play renews by itself when an escrow answers
    await sleep(renewed.playUntil - Date.now() + 100)
    await cli(buyer, 'play', published.content, '--out', join(dir, 'again.out'))
    const [after] = (await cli(buyer, 'library')).licences
    assert.ok(after.renewedAt > renewed.renewedAt, 'play renewed the expired licence')

    // revoked: the escrows learn it without a restart or a manual refresh, and refuse to vouch
    const { deviceId } = await cli(buyer, 'device', 'status')
    await cli(agency, 'agency', 'revoke', deviceId)
    const revokedAt = Date.now()
    let refusal: any
    while (Date.now() - revokedAt < 20_000) {
      try {
        await cli(buyer, 'renew', published.content)
      } catch (err) {
        refusal = err
        break
      }
      await sleep(250)
    }
    assert.equal(refusal?.code, 'ERR_CERT_REVOKED', String(refusal?.message))
    assert.match(refusal.message, /renewal refused by escrow .*revoked/)
    const [last] = (await cli(buyer, 'library')).licences
    await sleep(last.playUntil - Date.now() + 100)
    await assert.rejects(cli(buyer, 'play', published.content, '--out', join(dir, 'revoked.out')), { code: 'ERR_LICENCE_EXPIRED', message: /revoked/ })
  })
})
