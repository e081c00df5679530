// The escrow role under pressure, over real processes: one `keyfair start --role escrow`
// process, buyer processes (test/helpers/escrow-buyer.ts) each with its own libp2p node
// and sealed device, loopback TCP, the real SQLite ledger. Load, double spends, and
// SIGKILLs of the escrow in the middle of a load while buyers retry the same bytes; the
// SIGKILLs again with the ledger on a real PostgreSQL.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf } from '../../device/objects/market.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import { PASSPHRASE, createWorld } from '../helpers/escrow-world.ts'
import { encryptWork } from '../helpers/market.ts'
import { freePort } from '../helpers/nodes.ts'
import { requirePostgres, startPostgres } from '../helpers/postgres.ts'
import type { ChildProcess } from 'node:child_process'
import type { AuditReport, HoldRecord } from '../../node/escrow/ledger.ts'
import type { KeyfairNode } from '../../node/keyfair-node.ts'
import type { BuyerInput, BuyerResult, PurchaseOutcome } from '../helpers/escrow-buyer.ts'
import type { NodeProcess } from '../helpers/cli.ts'
import type { PgServer } from '../helpers/postgres.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'

const BUYER_SCRIPT = fileURLToPath(new URL('../helpers/escrow-buyer.ts', import.meta.url))
const PRICE = 7

/** a hold as `escrow holds --json` lists it: without the request and answer bytes */
type HoldJson = Omit<HoldRecord, 'answer' | 'requestBytes'>

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

describe('escrow under load, double spends and SIGKILL (real processes)', function () {
  this.timeout(300_000)
  let world: World
  let work: TestWork
  let client: KeyfairNode
  let manifestFile: string
  /** every process this file starts, so `after` can end what a failed test left running */
  const children = new Set<ChildProcess>()
  const escrows: EscrowProcess[] = []
  /** started by the first test on PostgreSQL */
  let server: PgServer | undefined

  before(async function () {
    world = await createWorld()
    const plain = join(world.dir, 'work.bin')
    await writeFile(plain, randomBytes(4096))
    work = await encryptWork(world.dir, 'work', plain)
    manifestFile = join(world.dir, 'manifest.cbor')
    await writeFile(manifestFile, work.manifestBytes)
    client = await world.startNode('client', [])
  })

  after(async function () {
    for (const child of children) {
      if (child.exitCode == null && child.signalCode == null && child.pid != null) {
        try { process.kill(child.pid, 'SIGKILL') } catch {}
      }
    }
    await Promise.all(escrows.map(async e => e.stop()))
    await world?.stop()
    await server?.destroy()
  })

  /** A `keyfair start --role escrow` process on a fixed loopback port, restartable on the same repo and port */
  class EscrowProcess {
    readonly repo: string
    readonly port: number
    peer = ''
    n: Uint8Array = new Uint8Array()
    private proc?: NodeProcess

    constructor (repo: string, port: number) {
      this.repo = repo
      this.port = port
    }

    /** its ledger in SQLite, or in a new database of `server` */
    static async create (name: string, engine: 'sqlite' | 'postgres' = 'sqlite'): Promise<EscrowProcess> {
      const e = new EscrowProcess(join(world.dir, name), await freePort())
      escrows.push(e)
      await cliOk(['--repo', e.repo, 'init'])
      const ledger = engine === 'postgres' ? ['--ledger', await server!.createDatabase(name.replace(/-/g, '_')), '--ledger-password-file', server!.passwordFile] : []
      await cliOk(['--repo', e.repo, 'escrow', 'init', '--bits', '2048', ...ledger])
      await e.start()
      const agencyAddr = world.agency.status().addresses[0]!
      const { code } = world.agencyRole.agency.createEnrollmentCode({ kind: 'escrow', ttlMs: 60_000 })
      await e.cli(['escrow', 'enroll', '--agency', agencyAddr, '--code', code])
      const info = await requestEscrowInfo({ connectionManager: client.streams }, multiaddr(e.addr), { signal: AbortSignal.timeout(10_000) })
      assert.equal(info.peer, e.peer)
      e.n = info.n
      return e
    }

    get addr (): string {
      return `/ip4/127.0.0.1/tcp/${this.port}/p2p/${this.peer}`
    }

    get pid (): number {
      const pid = this.proc?.child.pid
      if (pid == null) throw new Error('escrow process not running')
      return pid
    }

    async start (): Promise<void> {
      this.proc = await startNodeProcess(['--repo', this.repo, 'start', '--role', 'escrow', '--listen', `/ip4/127.0.0.1/tcp/${this.port}`])
      children.add(this.proc.child)
      if (this.peer === '') this.peer = this.proc.peerId
      assert.equal(this.proc.peerId, this.peer, 'the same repo keeps its peer id')
    }

    /** SIGKILL by pid: no shutdown code runs, as in a power cut of the process */
    async kill (): Promise<void> {
      const child = this.proc!.child
      const exited = new Promise<void>(resolve => {
        if (child.exitCode != null || child.signalCode != null) resolve()
        else child.once('exit', () => { resolve() })
      })
      process.kill(this.pid, 'SIGKILL')
      await exited
      assert.equal(child.signalCode, 'SIGKILL')
      this.proc = undefined
    }

    async stop (): Promise<void> {
      await this.proc?.stop()
      this.proc = undefined
    }

    /** SQLite's own check of the ledger file (the process must be stopped) */
    integrity (): string {
      const db = new DatabaseSync(join(this.repo, 'escrow', 'ledger.db'), { readOnly: true })
      try {
        return (db.prepare('PRAGMA integrity_check').all() as Array<{ integrity_check: string }>).map(r => r.integrity_check).join('; ')
      } finally {
        db.close()
      }
    }

    async cli<T = any> (args: string[]): Promise<T> {
      return cliOk(['--repo', this.repo, ...args])
    }

    async deposit (account: string, amount: number): Promise<void> {
      const r = await this.cli<{ account: string, balance: number }>(['escrow', 'deposit', account, String(amount)])
      assert.equal(r.account, account)
    }

    async holds (): Promise<HoldJson[]> {
      return (await this.cli<{ holds: HoldJson[] }>(['escrow', 'holds', '--limit', '1000'])).holds
    }

    async audit (): Promise<AuditReport> {
      const r = await runCli(['--repo', this.repo, '--json', 'escrow', 'audit'])
      const report = JSON.parse(r.stdout) as AuditReport
      // exit 1 exactly when the audit finds violations
      assert.equal(r.code, report.ok ? 0 : 1, r.stderr)
      return report
    }
  }

  async function cliOk<T = any> (args: string[]): Promise<T> {
    const r = await runCli(['--json', ...args])
    assert.equal(r.code, 0, `keyfair ${args.join(' ')} failed: ${r.stderr}`)
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T
  }

  /** t = 1 offers at PRICE naming the escrow, each written to a file for the buyers */
  async function offerFiles (escrow: EscrowProcess, name: string, count: number): Promise<string[]> {
    return Promise.all(Array.from({ length: count }, async (_, k) => {
      const offer = await createOffer({
        sellerKey: world.sellerKey,
        terms: { content: contentIdOf(work.manifest), price: PRICE, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 + k },
        title: `${name} ${k}`, tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
      })
      const file = join(world.dir, `${name}-offer-${k}.cbor`)
      await writeFile(file, encodeObject(offer))
      return file
    }))
  }

  interface Buyer {
    name: string
    peer: string
    key: string
    store: string
    device: string
  }

  /** Buyers with their own libp2p identity and an enrolled device on disk */
  async function makeBuyers (prefix: string, count: number): Promise<Buyer[]> {
    return Promise.all(Array.from({ length: count }, async (_, i) => {
      const name = `${prefix}-${i}`
      const key = await generateKeyPair('Ed25519')
      const { deviceId } = await world.device(name)
      return { name, peer: peerIdFromPrivateKey(key).toString(), key: Buffer.from(privateKeyToProtobuf(key)).toString('hex'), store: join(world.dir, `${name}-device`), device: deviceId }
    }))
  }

  interface BuyerRun {
    /** resolves once every buyer has prepared its requests and was told to go; the time of the go */
    started: Promise<number>
    finished: Promise<BuyerResult[]>
  }

  /** Starts one process per buyer; each prepares, then all send at once */
  function runBuyers (escrow: EscrowProcess, buyers: Buyer[], input: Omit<BuyerInput, 'escrow' | 'key' | 'store' | 'passphrase' | 'manifest'>): BuyerRun {
    const prepared: Array<Promise<void>> = []
    const results: Array<Promise<BuyerResult>> = []
    const procs: ChildProcess[] = []
    for (const buyer of buyers) {
      const child = spawn(process.execPath, [BUYER_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
      children.add(child)
      procs.push(child)
      const stderr: string[] = []
      createInterface({ input: child.stderr! }).on('line', line => { if (stderr.length < 200) stderr.push(line) })
      const lines = createInterface({ input: child.stdout! })
      let onPrepared!: () => void
      let onResult!: (r: BuyerResult) => void
      prepared.push(new Promise(resolve => { onPrepared = resolve }))
      results.push(new Promise((resolve, reject) => {
        onResult = resolve
        child.once('exit', (code, signal) => {
          // a result line resolved this already; otherwise this is the failure
          reject(new Error(`buyer ${buyer.name} exited (${code ?? signal}) without a result: ${stderr.join('\n')}`))
        })
      }))
      lines.on('line', line => {
        let event: any
        try { event = JSON.parse(line) } catch { return }
        if (event.event === 'prepared') onPrepared()
        if (event.event === 'result') onResult(event as BuyerResult)
      })
      const full: BuyerInput = { ...input, escrow: escrow.addr, key: buyer.key, store: buyer.store, passphrase: PASSPHRASE, manifest: manifestFile, waitForGo: true }
      child.stdin!.write(JSON.stringify(full) + '\n')
    }
    const failedEarly = Promise.race(results).then(() => new Promise<never>(() => {}))
    const started = Promise.race([Promise.all(prepared), failedEarly]).then(() => {
      for (const child of procs) child.stdin!.end('go\n')
      return Date.now()
    })
    const finished = Promise.all(results)
    // awaited by the test; a test that failed before that must not leave an unhandled rejection
    finished.catch(() => {})
    started.catch(() => {})
    return { started, finished }
  }

  const allOutcomes = (results: BuyerResult[]): PurchaseOutcome[] => results.flatMap(r => r.purchases)

  /** Every purchase answered, accepted by the device and completed; repeated answers byte-identical */
  function assertAllBought (results: BuyerResult[], expected: number): void {
    const outcomes = allOutcomes(results)
    assert.equal(outcomes.length, expected)
    const bad = outcomes.filter(o => o.refusals.length > 0 || o.lost != null || o.deviceError != null || !o.accepted || !o.completed || o.answers.length === 0)
    const brief = (o: PurchaseOutcome): unknown => ({ purchase: o.purchase, answers: o.answers.length, refusals: o.refusals, lost: o.lost, deviceError: o.deviceError, accepted: o.accepted, completed: o.completed, retried: o.retried.join(' ') })
    assert.equal(bad.length, 0, `${bad.length} purchases not bought cleanly: ${JSON.stringify(bad.slice(0, 5).map(brief))}`)
    for (const o of outcomes) {
      const distinct = new Set(o.answers.map(a => a.sha256))
      assert.equal(distinct.size, 1, `purchase ${o.purchase} got ${distinct.size} different answers: ${JSON.stringify(o.answers)}`)
      assert.equal(new Set(o.answers.map(a => a.hold)).size, 1)
    }
  }

  /** Holds one-to-one with purchases, each holding PRICE from its buyer under the hold id the buyer was told */
  function assertHoldsMatch (holds: HoldJson[], results: BuyerResult[]): void {
    const byPurchase = new Map<string, HoldJson>()
    for (const h of holds) {
      assert.equal(byPurchase.has(`${h.device}/${h.purchase}`), false, `two holds for purchase ${h.purchase}`)
      byPurchase.set(`${h.device}/${h.purchase}`, h)
    }
    let answered = 0
    for (const r of results) {
      for (const o of r.purchases) {
        if (o.answers.length === 0) continue
        answered++
        const hold = byPurchase.get(`${r.device}/${o.purchase}`)
        assert.ok(hold != null, `no hold for answered purchase ${o.purchase}`)
        assert.equal(o.answers[0]!.hold, hold.id, `purchase ${o.purchase}: the answer names hold ${o.answers[0]!.hold}, the escrow recorded ${hold.id}`)
        assert.equal(hold.buyer, r.peer)
        assert.equal(hold.amount, PRICE)
        assert.equal(hold.state, 'open')
      }
    }
    assert.equal(holds.length, answered, 'one hold per answered purchase, no other')
  }

  function assertAudit (report: AuditReport, deposits: number): void {
    assert.deepEqual(report.violations, [])
    assert.equal(report.ok, true)
    assert.equal(report.deposits, deposits)
    assert.equal(report.withdrawals, 0)
    assert.equal(report.held, report.deposits - report.withdrawals, 'balances + open holds = deposits − withdrawals')
  }

  function summary (what: string, purchases: number, kills: number, ms: number): void {
    console.log(`      ${what}: ${purchases} purchases, ${kills} kills, ${(ms / 1000).toFixed(2)} s, ${(purchases / (ms / 1000)).toFixed(1)} purchases/s`)
  }

  it('takes 200 concurrent purchases from 4 buyer processes: each charged once, money conserved', async function () {
    const BUYERS = 4
    const EACH = 50
    const escrow = await EscrowProcess.create('escrow-load')
    const buyers = await makeBuyers('load', BUYERS)
    const offers = await offerFiles(escrow, 'load', 2)
    await Promise.all(buyers.map(async b => escrow.deposit(b.peer, EACH * PRICE)))

    const run = runBuyers(escrow, buyers, { offers, purchases: EACH, concurrency: EACH })
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
    summary('load', BUYERS * EACH, 0, end - go)
    await escrow.stop()
    assert.equal(escrow.integrity(), 'ok')
  })

  it('charges exactly one of two purchases raced by a buyer funded for one, in 5 races at once', async function () {
    const RACES = 5
    const escrow = await EscrowProcess.create('escrow-double')
    const buyers = await makeBuyers('double', RACES)
    const offers = await offerFiles(escrow, 'double', 2)
    await Promise.all(buyers.map(async b => escrow.deposit(b.peer, PRICE)))

    const run = runBuyers(escrow, buyers, { offers, purchases: 2, concurrency: 2 })
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
    summary('double spend', RACES * 2, 0, Math.max(...results.map(r => r.sendEnd)) - go)
    await escrow.stop()
  })

  // Kill delays (ms after the load starts, then after each restart) come from
  // KEYFAIR_CRASH_DELAYS="a,b,c;d,e,f" (one list per run) to replay a failure.
  // The PostgreSQL run (run 3) restarts into a process that may stand by for a moment: the
  // killed one's lock is released when the server sees its socket close.
  const replay = process.env.KEYFAIR_CRASH_DELAYS?.split(';').map(run => run.split(',').map(Number))
  for (const [run, engine] of [[0, 'sqlite'], [1, 'sqlite'], [2, 'postgres']] as const) {
    it(`survives SIGKILL of the escrow at random points during a load (run ${run + 1}, ${engine}): nothing lost, nothing charged twice`, async function () {
      if (engine === 'postgres') server ??= await startPostgres(requirePostgres(this))
      const BUYERS = 4
      const EACH = 100
      const KILLS = 3
      const SLACK = 3
      const escrow = await EscrowProcess.create(`escrow-crash-${run}`, engine)
      const buyers = await makeBuyers(`crash-${run}`, BUYERS)
      const offers = await offerFiles(escrow, `crash-${run}`, 2)
      // a little more than enough: a double charge shows as a lower balance, not as a refusal
      const deposit = EACH * PRICE + SLACK * PRICE
      await Promise.all(buyers.map(async b => escrow.deposit(b.peer, deposit)))

      const delays = replay?.[run] ?? Array.from({ length: KILLS }, () => 100 + Math.floor(Math.random() * 400))
      console.log(`      crash run ${run + 1}: kill delays ${delays.join(',')} ms (replay with KEYFAIR_CRASH_DELAYS)`)
      const load = runBuyers(escrow, buyers, { offers, purchases: EACH, concurrency: 20, replays: 1, duplicateEvery: 5, deadlineMs: 90_000 })
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
      summary(`crash run ${run + 1} (${Object.values(codes).reduce((a, b) => a + b, 0)} attempts retried, ${replayed} answers lost in a crash and replayed)`, BUYERS * EACH, kills.length, end - go)
    })
  }
})
