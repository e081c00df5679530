// The escrow role under pressure, over real processes, on one ledger engine: one
// `keyfair start --role escrow` process, buyer processes (test/helpers/escrow-buyer.ts) each
// with its own libp2p node and sealed device, loopback TCP. Load, double spends, and SIGKILLs
// of the escrow in the middle of a load while buyers retry the same bytes.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createWorld } from '../../helpers/escrow-world.ts'
import { encryptWork } from '../../helpers/market.ts'
import { PRICE, makeBuyers, offerFiles, runBuyers } from './buyer-processes.ts'
import { EscrowProcess } from './escrow-process.ts'
import { allOutcomes, assertAllBought, assertAudit, assertHoldsMatch, summary } from './process-checks.ts'
import { sharedPostgres } from './shared-postgres.ts'
import type { LedgerEngine } from '../../../node/escrow/ledger-store.ts'
import type { ProcessHost } from './escrow-process.ts'

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

// Kill delays (ms after the load starts, then after each restart) come from
// KEYFAIR_CRASH_DELAYS="a,b,c;d,e,f;g,h,i;j,k,l" to replay a failure: one list per run, in the
// order the runs are numbered, runs 1 and 2 on SQLite, then runs 3 and 4 on PostgreSQL (an
// empty list, as in ";;g,h,i", keeps a run random).
const replay = process.env.KEYFAIR_CRASH_DELAYS?.split(';').map(run => run.split(',').filter(d => d.trim() !== '').map(Number))
const CRASH_RUNS: Record<LedgerEngine, readonly number[]> = { sqlite: [0, 1], postgres: [2, 3] }

export function processesSuite (engine: LedgerEngine): void {
  describe('the escrow under load, double spends and SIGKILL (real processes)', function () {
    this.timeout(300_000)
    let host: ProcessHost

    before(async function () {
      const server = engine === 'postgres' ? await sharedPostgres(this) : undefined
      const world = await createWorld()
      const plain = join(world.dir, 'work.bin')
      await writeFile(plain, randomBytes(4096))
      const work = await encryptWork(world.dir, 'work', plain)
      const manifestFile = join(world.dir, 'manifest.cbor')
      await writeFile(manifestFile, work.manifestBytes)
      host = { world, work, manifestFile, server, client: await world.startNode('client', []), children: new Set(), escrows: [] }
    })

    after(async function () {
      if (host == null) return
      for (const child of host.children) {
        if (child.exitCode == null && child.signalCode == null && child.pid != null) {
          try { process.kill(child.pid, 'SIGKILL') } catch {}
        }
      }
      await Promise.all(host.escrows.map(async e => e.stop()))
      await host.world.stop()
    })

    it('takes 200 concurrent purchases from 4 buyer processes: each charged once, money conserved', async function () {
      const BUYERS = 4
      const EACH = 50
      const escrow = await EscrowProcess.create(host, 'escrow-load', engine)
      const buyers = await makeBuyers(host, 'load', BUYERS)
      const offers = await offerFiles(host, escrow, 'load', 2)
      await Promise.all(buyers.map(async b => escrow.deposit(b.peer, EACH * PRICE)))

      const run = runBuyers(host, escrow, buyers, { offers, purchases: EACH, concurrency: EACH })
      const go = await run.started
      const results = await run.finished
      const end = Math.max(...results.map(r => r.sendEnd))

      assertAllBought(results, BUYERS * EACH)
      // funded exactly: deposit − 50 · P = 0
      for (const r of results) assert.equal(r.balance, 0, `buyer ${r.peer} balance`)
      assertHoldsMatch(await escrow.holds(), results)
      const report = await escrow.audit()
      assertAudit(report, BUYERS * EACH * PRICE)
      assert.deepEqual(report.holds, { open: BUYERS * EACH, released: 0, refunded: 0 })
      summary(`load (${engine})`, BUYERS * EACH, 0, end - go)
      await escrow.stop()
      if (engine === 'sqlite') assert.equal(escrow.integrity(), 'ok')
    })

    it('charges exactly one of two purchases raced by a buyer funded for one, in 5 races at once', async function () {
      const RACES = 5
      const escrow = await EscrowProcess.create(host, 'escrow-double', engine)
      const buyers = await makeBuyers(host, 'double', RACES)
      const offers = await offerFiles(host, escrow, 'double', 2)
      await Promise.all(buyers.map(async b => escrow.deposit(b.peer, PRICE)))

      const run = runBuyers(host, escrow, buyers, { offers, purchases: 2, concurrency: 2 })
      const go = await run.started
      const results = await run.finished
      for (const r of results) {
        const [a, b] = r.purchases
        assert.ok(a != null && b != null)
        assert.notEqual(a.purchase, b.purchase)
        const bought = r.purchases.filter(o => o.answers.length > 0)
        const refused = r.purchases.filter(o => o.answers.length === 0)
        assert.equal(bought.length, 1, `buyer ${r.peer}: ${JSON.stringify(r.purchases)}`)
        assert.equal(refused.length, 1)
        assert.deepEqual([bought[0]!.accepted, bought[0]!.completed, bought[0]!.refusals], [true, true, []])
        assert.deepEqual(refused[0]!.refusals, ['ERR_INSUFFICIENT_FUNDS'])
        assert.equal(refused[0]!.lost, undefined)
        assert.equal(r.balance, 0)
      }
      const holds = await escrow.holds()
      assertHoldsMatch(holds, results)
      assert.equal(holds.length, RACES)
      assertAudit(await escrow.audit(), RACES * PRICE)
      summary(`double spend (${engine})`, RACES * 2, 0, Math.max(...results.map(r => r.sendEnd)) - go)
      await escrow.stop()
    })

    // The PostgreSQL runs restart into a process that may stand by for a moment: the killed
    // one's lock is released when the server sees its socket close.
    for (const run of CRASH_RUNS[engine]) {
      it(`survives SIGKILL of the escrow at random points during a load (run ${run + 1}, ${engine}): nothing lost, nothing charged twice`, async function () {
        const BUYERS = 4
        const EACH = 100
        const KILLS = 3
        const SLACK = 3
        const escrow = await EscrowProcess.create(host, `escrow-crash-${run}`, engine)
        const buyers = await makeBuyers(host, `crash-${run}`, BUYERS)
        const offers = await offerFiles(host, escrow, `crash-${run}`, 2)
        // a little more than enough: a double charge shows as a lower balance, not as a refusal
        const deposit = EACH * PRICE + SLACK * PRICE
        await Promise.all(buyers.map(async b => escrow.deposit(b.peer, deposit)))

        const given = replay?.[run] ?? []
        const delays = given.length > 0 ? given : Array.from({ length: KILLS }, () => 100 + Math.floor(Math.random() * 400))
        console.log(`      crash run ${run + 1}: kill delays ${delays.join(',')} ms (replay with KEYFAIR_CRASH_DELAYS)`)
        const load = runBuyers(host, escrow, buyers, { offers, purchases: EACH, concurrency: 20, replays: 1, duplicateEvery: 5, deadlineMs: 90_000 })
        const go = await load.started
        let finished = false
        const results = load.finished.finally(() => { finished = true })
        results.catch(() => {})
        const kills: Array<{ delay: number, at: number, epoch: number, restartMs: number }> = []
        for (const delay of delays) {
          await Promise.race([sleep(delay), results])
          if (finished) break
          const epoch = Date.now()
          await escrow.kill()
          await escrow.start()
          kills.push({ delay, at: epoch - go, epoch, restartMs: Date.now() - epoch })
        }
        const outcome = await results
        const end = Math.max(...outcome.map(r => r.sendEnd))
        console.log(`      crash run ${run + 1}: killed at ${kills.map(k => `${k.at} ms (back after ${k.restartMs} ms)`).join(', ')}`)
        assert.equal(kills.length, delays.length, `the load ended after ${kills.length} of ${delays.length} kills: the kills must land during it`)

        assertAllBought(outcome, BUYERS * EACH)
        const codes: Record<string, number> = {}
        for (const o of allOutcomes(outcome)) for (const c of o.retried) codes[c] = (codes[c] ?? 0) + 1
        console.log(`      crash run ${run + 1}: attempts retried ${JSON.stringify(codes)}`)
        // not only refused connections while it was down: exchanges cut in the middle
        const cut = Object.entries(codes).filter(([code]) => code !== 'ECONNREFUSED').reduce((n, [, k]) => n + k, 0)
        assert.ok(cut > 0, 'the kills cut requests in flight, which were retried')
        const repeated = allOutcomes(outcome).filter(o => o.answers.length > 1).length
        assert.equal(repeated, BUYERS * EACH, 'every purchase got its answer at least twice (replay)')
        for (const r of outcome) assert.equal(r.balance, deposit - EACH * PRICE, `buyer ${r.peer}: charged once per purchase`)
        const holds = await escrow.holds()
        assertHoldsMatch(holds, outcome)
        assert.equal(holds.length, BUYERS * EACH)
        const report = await escrow.audit()
        assertAudit(report, BUYERS * deposit)
        assert.deepEqual(report.holds, { open: BUYERS * EACH, released: 0, refunded: 0 })
        // purchases committed before a kill whose first answer came only after it: answers lost in the crash, replayed
        const createdAt = new Map(holds.map(h => [h.purchase, h.createdAt]))
        const replayed = allOutcomes(outcome).filter(o => o.retried.length > 0 && kills.some(k => (createdAt.get(o.purchase) ?? Infinity) < k.epoch && k.epoch < (o.answeredAt ?? 0))).length
        await escrow.stop()
        if (engine === 'sqlite') assert.equal(escrow.integrity(), 'ok')
        summary(`crash run ${run + 1} (${engine}, ${Object.values(codes).reduce((a, b) => a + b, 0)} attempts retried, ${replayed} answers lost in a crash and replayed)`, BUYERS * EACH, kills.length, end - go)
      })
    }
  })
}
