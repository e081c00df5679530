// Reserve before paying, on real node processes (an agency, 3 escrows, a seller, 3 buyers)
// driven through the CLI: a 2-of-3 offer bought by a buyer short of funds at one chosen
// escrow (another escrow takes its place), refused for a buyer funded at one escrow only
// (before any chunk or answer, every escrow named with its balance and the price, every
// reservation given back), refused naming a stopped escrow, and refused for a revoked device.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm } from '../../scripts/swarm.ts'
import { FAST_KDF } from '../helpers/keys.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'reserve passphrase'
const PRICE = 50
const FULL = 10_000
const SHORT = 20

const cli = swarmCli(PASSPHRASE)

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')

/** the buy's refusal as `--json` printed it: `{ code, message, escrows, … }` */
async function refusal (buying: Promise<unknown>): Promise<any> {
  const err: any = await buying.then(() => assert.fail('the buy should be refused'), (e: unknown) => e)
  assert.ok(err.error != null, String(err.message))
  return err.error
}

describe('a buy reserves at t escrows before anything is answered', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-reserve-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE, KEYFAIR_KDF_N: String(FAST_KDF.N) },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        ...[1, 2, 3].map(() => ({ roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] })),
        { roles: ['seller'] },
        { roles: ['buyer'] },
        { roles: ['buyer'] },
        { roles: ['buyer'] }
      ]
    })
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('buys around an escrow short of funds; refuses before any chunk or answer when fewer than t can hold the price, naming why', async function () {
    const [agency, e1, e2, e3, seller, a, b, c] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
    const escrows = [e1, e2, e3]
    const agencyAddr = agency.addresses[0]!
    for (const e of escrows) {
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
      await cli(e, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
    }
    await cli(seller, 'trust', '--agency', agencyAddr)
    const devices = new Map<string, string>()
    for (const buyer of [a, b, c]) {
      await cli(buyer, 'device', 'init', '--bits', '2048')
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
      devices.set(buyer.peerId, (await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)).deviceId)
    }
    // A: short at escrow 1 (chosen first), funded at 2 and 3. B: funded at escrow 2 only. C: funded everywhere
    const funds: Array<[SwarmNode, SwarmNode, number]> = [[e1, a, SHORT], [e2, a, FULL], [e3, a, FULL], [e1, b, SHORT], [e2, b, FULL], ...escrows.map(e => [e, c, FULL] as [SwarmNode, SwarmNode, number])]
    for (const [e, buyer, amount] of funds) await cli(e, 'escrow', 'deposit', buyer.peerId, String(amount))
    const balance = async (e: SwarmNode, peer: string): Promise<number> => (await cli(e, 'escrow', 'accounts')).accounts.find((x: any) => x.account === peer)?.balance ?? 0
    /** the buyer's whole balance back at every escrow, no hold of it and no reservation open */
    const untouched = async (buyer: SwarmNode, expected: number[]): Promise<void> => {
      assert.deepEqual(await Promise.all(escrows.map(async e => balance(e, buyer.peerId))), expected)
      for (const e of escrows) {
        assert.deepEqual((await cli(e, 'escrow', 'holds', '--buyer', buyer.peerId)).holds, [], `no hold of ${buyer.peerId} at escrow ${e.peerId}`)
        const audit = await cli(e, 'escrow', 'audit')
        assert.deepEqual(audit.violations, [])
        assert.deepEqual(audit.reserved, { open: 0, amount: 0 }, 'no reservation left open')
      }
    }

    const work = join(dir, 'work.bin')
    await writeFile(work, randomBytes(3 * 1024 * 1024 + 11))
    const order = escrows.flatMap(e => ['--escrow', e.addresses[0]!])
    // open: sold with the seller offline too, so a revoked device meets the escrows, not a licence refusal
    const pub = await cli(seller, 'publish', work, '--title', 'Blue in Green', '--tags', 'modal', '--price', String(PRICE), '--escrows', '2-of-3', '--open', ...order)
    for (const buyer of [a, b, c]) assert.ok((await cli(buyer, 'search', 'modal')).offers.some((o: any) => o.offer === pub.offer))

    // 1. A is short at escrow 1: escrow 3 takes its place, A pays 2 × the price, nothing at escrow 1
    const outA = join(dir, 'a.out')
    const boughtA = await cli(a, 'buy', pub.offer, '--out', outA, '--yes')
    assert.equal(await sha(outA), await sha(work))
    assert.deepEqual(boughtA.escrows.map((e: any) => [e.j, e.outcome]), [[1, 'unavailable'], [2, 'accepted'], [3, 'accepted']])
    assert.equal(boughtA.paid, 2 * PRICE)
    assert.deepEqual(await Promise.all(escrows.map(async e => balance(e, a.peerId))), [SHORT, FULL - PRICE, FULL - PRICE], 'charged once at each escrow that answered')
    assert.deepEqual((await cli(e1, 'escrow', 'holds', '--buyer', a.peerId)).holds, [])

    // 2. B holds the price at escrow 2 only: refused before any chunk and any answer
    const dataB = join(b.repo, 'content', pub.content, 'data.kf')
    const refusedB = await refusal(cli(b, 'buy', pub.offer, '--out', join(dir, 'b.out')))
    assert.equal(refusedB.code, 'ERR_PURCHASE_REFUSED', refusedB.message)
    assert.deepEqual(refusedB.escrows.map((e: any) => [e.j, e.peer, e.code, e.balance, e.amount]), [
      [1, e1.peerId, 'ERR_INSUFFICIENT_FUNDS', SHORT, PRICE],
      [3, e3.peerId, 'ERR_INSUFFICIENT_FUNDS', 0, PRICE]
    ])
    for (const e of [e1, e3]) assert.match(refusedB.message, new RegExp(`escrow \\d ${e.peerId}: insufficient funds`))
    assert.equal(refusedB.retryable, false)
    assert.doesNotMatch(refusedB.message, /buy again to retry/, 'no retry advised when money is short')
    const chunks = await stat(dataB).then(s => s.size, () => 0)
    assert.equal(chunks, 0, 'no chunk downloaded')
    await untouched(b, [SHORT, FULL, 0])

    // 3. C's device is revoked: every escrow refuses it by name, nothing is reserved
    await cli(agency, 'agency', 'revoke', devices.get(c.peerId)!, '--reason', 'keyCompromise')
    for (const e of escrows) await cli(e, 'escrow', 'crl', 'refresh')
    const refusedC = await refusal(cli(c, 'buy', pub.offer, '--yes'))
    assert.equal(refusedC.code, 'ERR_PURCHASE_REFUSED', refusedC.message)
    assert.deepEqual(refusedC.escrows.map((e: any) => [e.j, e.code]), [[1, 'ERR_CERT_REVOKED'], [2, 'ERR_CERT_REVOKED'], [3, 'ERR_CERT_REVOKED']])
    for (const e of escrows) assert.match(refusedC.message, new RegExp(`${e.peerId}: refused: this device's certificate is revoked`))
    assert.doesNotMatch(refusedC.message, /buy again to retry/)
    await untouched(c, [FULL, FULL, FULL])

    // 4. escrow 3 stopped: B is refused again, escrow 3 named unreachable, and a retry advised
    await swarm.stopNode(e3.index)
    const refusedAgain = await refusal(cli(b, 'buy', pub.offer, '--yes'))
    assert.equal(refusedAgain.code, 'ERR_PURCHASE_REFUSED', refusedAgain.message)
    assert.deepEqual(refusedAgain.escrows.map((e: any) => [e.j, e.code]), [[1, 'ERR_INSUFFICIENT_FUNDS'], [3, 'ERR_ESCROW_UNREACHABLE']])
    assert.match(refusedAgain.message, new RegExp(`escrow 3 ${e3.peerId}: unreachable`))
    assert.equal(refusedAgain.retryable, true)
    assert.match(refusedAgain.message, /buy again to retry/)
    assert.deepEqual(await Promise.all([e1, e2].map(async e => balance(e, b.peerId))), [SHORT, FULL])
    for (const e of [e1, e2]) assert.deepEqual((await cli(e, 'escrow', 'audit')).reserved, { open: 0, amount: 0 })
  })
})
