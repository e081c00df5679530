// The PostgreSQL ledger through trouble: two escrow processes committing the same purchases
// at once, and the database crashing in the middle of a load while buyers retry.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeObject, encodeObject } from '../../../device/objects/codec.ts'
import { contentIdOf } from '../../../device/objects/market.ts'
import { PgLedger } from '../../../node/escrow/pg-ledger.ts'
import { createOffer } from '../../../node/seller/offers.ts'
import { requestUnblind } from '../../../protocols/escrow/unblind.ts'
import { RemoteError } from '../../../protocols/errors.ts'
import { createWorld } from '../../helpers/escrow-world.ts'
import { encryptWork } from '../../helpers/market.ts'
import { waitFor } from '../../helpers/nodes.ts'
import { bytes, newHold } from './ledger-fixtures.ts'
import { sharedPostgres } from './shared-postgres.ts'
import type { Signed } from '../../../device/objects/signed.ts'
import type { World } from '../../helpers/escrow-world.ts'
import type { TestWork } from '../../helpers/market.ts'
import type { PgServer } from '../../helpers/postgres.ts'

const log = logger('keyfair:test:ledger')

export function outageSuite (): void {
  describe('through an outage', function () {
    this.timeout(300_000)
    let server: PgServer | undefined
    let world: World
    let work: TestWork

    before(async function () {
      server = await sharedPostgres(this)
      // the suites before this one wrote to the shared server: the crash below replays only
      // what this suite writes, as on a server of its own
      await server.checkpoint()
      world = await createWorld()
      const plain = join(world.dir, 'work.bin')
      await writeFile(plain, randomBytes(10_000))
      work = await encryptWork(world.dir, 'work', plain)
    })

    after(async function () {
      await world?.stop()
      // the server is shared: a test that stopped within its outage leaves it running again
      if (server != null && !server.running()) await server.start()
    })

    it('charges each purchase once when two escrow processes commit the same purchases, or rival requests under one purchase id, in groups at once', async function () {
      const url = await server!.createDatabase('two_writers')
      const ledgers = await Promise.all([0, 1].map(async () => PgLedger.open({ url, password: server!.password }, log)))
      const [a, b] = ledgers as [PgLedger, PgLedger]
      try {
        await a.deposit('racer', 100)
        // the same requests through each process, under its own hold ids and answers, in groups of 10, all at once
        const mine = Array.from({ length: 120 }, () => newHold('racer', 1))
        const theirs = mine.map(h => ({ ...h, id: randomBytes(16).toString('hex'), answer: bytes(64) }))
        const groups = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].flatMap(k => [a.openHolds(mine.slice(k * 10, k * 10 + 10)), b.openHolds(theirs.slice(k * 10, k * 10 + 10).reverse())])
        const outcomes = await Promise.all(groups)
        const byProcess = [outcomes.filter((_, i) => i % 2 === 0).flat(), outcomes.filter((_, i) => i % 2 === 1).flatMap(g => g.reverse())]
        let charged = 0
        for (let i = 0; i < mine.length; i++) {
          const [x, y] = [byProcess[0]![i]!, byProcess[1]![i]!]
          if ('error' in x || 'error' in y) {
            // no money left: both refused the same way, or one charged and the other got its hold
            const codes = [x, y].map(o => 'error' in o ? (o.error as { code: string }).code : (o.result.charged ? 'charged' : 'replayed'))
            assert.ok(codes.every(c => c === 'ERR_INSUFFICIENT_FUNDS') || (codes.includes('ERR_INSUFFICIENT_FUNDS') && !codes.includes('charged')), `purchase ${i}: ${codes.join(' ')}`)
            continue
          }
          assert.equal(Number(x.result.charged) + Number(y.result.charged), x.result.charged || y.result.charged ? 1 : 0, `purchase ${i} charged at most once`)
          assert.equal(x.result.hold.id, y.result.hold.id, `purchase ${i}: both processes name one hold`)
          assert.deepEqual(x.result.hold.answer, y.result.hold.answer, `purchase ${i}: and one answer`)
          if (x.result.charged || y.result.charged) charged++
        }
        assert.equal(charged, 100, 'exactly as many holds as the money pays for')
        assert.equal(await a.balance('racer'), 0)

        // rival requests under the same purchase ids, from two buyers: no common row lock, so the
        // groups meet at the UNIQUE index; one request per purchase id is charged, the other refused
        await a.deposit('rival-a', 100)
        await b.deposit('rival-b', 100)
        const first = Array.from({ length: 60 }, () => newHold('rival-a', 1))
        const rivals = first.map(h => ({ ...newHold('rival-b', 1), device: h.device, purchase: h.purchase }))
        const raced = await Promise.all([0, 1, 2, 3, 4, 5].flatMap(k => [a.openHolds(first.slice(k * 10, k * 10 + 10)), b.openHolds(rivals.slice(k * 10, k * 10 + 10))]))
        const codes = raced.flat().map(o => 'error' in o ? (o.error as { code: string }).code : (o.result.charged ? 'charged' : 'replayed'))
        assert.equal(codes.filter(c => c === 'charged').length, 60, codes.join(' '))
        assert.equal(codes.filter(c => c === 'ERR_PURCHASE_ID_USED').length, 60, codes.join(' '))
        assert.equal(await a.balance('rival-a') + await b.balance('rival-b'), 200 - 60)
        assert.equal((await b.holds({ limit: 1000 })).length, 160)
        assert.deepEqual((await b.audit()).violations, [])
      } finally {
        await a.close()
        await b.close()
      }
    })

    it('refuses with ERR_LEDGER_UNAVAILABLE while the database is down mid-load; retried, nothing is charged twice or lost', async function () {
      const pgServer = server!
      const PRICE = 5
      const EACH = 100
      const SLACK = 3
      const escrow = await world.startEscrow('escrow-outage', { ledger: await pgServer.createDatabase('outage'), ledgerPasswordFile: pgServer.passwordFile })
      const addr = multiaddr(escrow.node.status().addresses[0]!)
      const offer = encodeObject(await createOffer({
        sellerKey: world.sellerKey,
        terms: { content: contentIdOf(work.manifest), price: PRICE, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 },
        title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
      }))
      const buyers = await Promise.all(['outage-1', 'outage-2'].map(async name => ({ node: await world.startNode(name, []), d: await world.device(name) })))
      const jobs: Array<{ buyer: number, purchase: string, request: Uint8Array }> = []
      for (const [k, b] of buyers.entries()) {
        await escrow.role.ledger.deposit(b.node.status().peerId, (EACH + SLACK) * PRICE)
        for (let i = 0; i < EACH; i++) {
          const p = await b.d.device.beginPurchase({ offer, manifest: work.manifestBytes, buyer: b.node.status().peerId })
          jobs.push({ buyer: k, purchase: p.purchase, request: (await b.d.device.requestShare({ purchase: p.purchase, j: 1 })).request })
        }
      }

      const refusals: string[] = []
      const failures: string[] = []
      let answered = 0
      const inFlight = [0, 0]
      const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
      /** one purchase: the very same request again after any ERR_LEDGER_UNAVAILABLE, until it is answered */
      const buy = async (job: typeof jobs[number]): Promise<Uint8Array> => {
        const deadline = Date.now() + 120_000
        for (;;) {
          while (inFlight[job.buyer]! >= 48) await sleep(5)
          inFlight[job.buyer]!++
          try {
            const answer = await requestUnblind({ connectionManager: buyers[job.buyer]!.node.streams }, addr, job.request, { signal: AbortSignal.timeout(30_000) })
            answered++
            return answer
          } catch (err: any) {
            if (err instanceof RemoteError) refusals.push(err.code)
            else failures.push(String(err?.code ?? err?.name))
            if (err?.code !== 'ERR_LEDGER_UNAVAILABLE' || Date.now() > deadline) throw err
          } finally {
            inFlight[job.buyer]!--
          }
          await sleep(100 + Math.floor(Math.random() * 100))
        }
      }
      const started = Date.now()
      const load = Promise.allSettled(jobs.map(buy))
      // the database crashes (no shutdown checkpoint) with part of the load answered
      await waitFor(() => answered >= 20, 60_000, 'the first answers')
      const answeredAtStop = answered
      const stoppedAt = Date.now() - started
      await pgServer.stop('immediate')
      await sleep(1500)
      const refusedWhileDown = refusals.length
      await pgServer.start()
      const results = await load
      const ms = Date.now() - started

      const lost = results.flatMap((r, i) => r.status === 'rejected' ? [`${jobs[i]!.purchase}: ${String((r.reason as Error).message)}`] : [])
      assert.deepEqual(lost, [], 'every purchase answered in the end')
      assert.ok(answeredAtStop < jobs.length, 'the database went down in the middle of the load')
      assert.ok(refusedWhileDown > 0, 'requests were refused while it was down')
      assert.deepEqual([...new Set(refusals)], ['ERR_LEDGER_UNAVAILABLE'], 'every refusal said the ledger is unavailable')
      assert.deepEqual(failures, [], 'no stream was reset: each refusal came as an error frame')
      for (const b of buyers) assert.equal(await escrow.role.ledger.balance(b.node.status().peerId), SLACK * PRICE, 'charged once per purchase')
      const holds = await escrow.role.ledger.holds({ limit: 10_000 })
      assert.equal(holds.length, jobs.length, 'one hold per purchase')
      const answers = results.map(r => (r as PromiseFulfilledResult<Uint8Array>).value)
      for (const [i, answer] of answers.entries()) {
        const hold = (decodeObject(answer) as Signed<{ hold: string }>).body.hold
        assert.equal(holds.find(h => h.id === hold)?.purchase, jobs[i]!.purchase, 'the answer names the hold recorded for its purchase')
      }
      // every request once more: the stored answers, byte for byte, no charge
      const again = await Promise.all(jobs.slice(0, 40).map(buy))
      assert.deepEqual(again, answers.slice(0, 40))
      const report = await escrow.role.ledger.audit()
      assert.deepEqual(report.violations, [])
      assert.deepEqual(report.holds, { open: jobs.length, released: 0, refunded: 0 })
      assert.equal(report.deposits, 2 * (EACH + SLACK) * PRICE)
      assert.equal(report.held, report.deposits)
      console.log(`      outage at ${stoppedAt} ms (${answeredAtStop} answered); ${refusals.length} refusals ERR_LEDGER_UNAVAILABLE (${refusedWhileDown} while down 1.5 s); all ${jobs.length} bought in ${ms} ms`)
    })
  })
}
