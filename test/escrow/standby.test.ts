// A standby escrow over real processes and a real PostgreSQL: two `keyfair start --role
// escrow` processes of one escrow (the second on a copy of the first's repo) share one
// ledger database. Only the holder of the escrow's advisory lock answers; SIGKILL it in
// the middle of a load and the other answers within 10 s, with the stored answers for
// requests it never saw.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { cp, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf } from '../../device/objects/market.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import { RemoteError } from '../../protocols/errors.ts'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import { createWorld } from '../helpers/escrow-world.ts'
import { encryptWork } from '../helpers/market.ts'
import { freePort } from '../helpers/nodes.ts'
import { requirePostgres, startPostgres } from '../helpers/postgres.ts'
import type { AuditReport } from '../../node/escrow/ledger-store.ts'
import type { KeyfairNode, NodeStatus } from '../../node/keyfair-node.ts'
import type { NodeProcess } from '../helpers/cli.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'
import type { PgServer } from '../helpers/postgres.ts'

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
/** the ledger's password comes from the file in the settings, not from the environment */
const ENV = { PGPASSWORD: '' }

/** One process of the escrow: its own repo copy and loopback port */
interface Member {
  repo: string
  port: number
  proc?: NodeProcess
}

interface Pair {
  peer: string
  n: Uint8Array
  a: Member
  b: Member
}

describe('a standby escrow on PostgreSQL (real processes)', function () {
  this.timeout(300_000)
  let server: PgServer | undefined
  let world: World
  let work: TestWork
  const procs = new Set<NodeProcess>()

  before(async function () {
    server = await startPostgres(requirePostgres(this))
    world = await createWorld()
    const plain = join(world.dir, 'work.bin')
    await writeFile(plain, randomBytes(4096))
    work = await encryptWork(world.dir, 'work', plain)
  })

  after(async function () {
    for (const proc of procs) {
      if (proc.child.exitCode == null && proc.child.signalCode == null && proc.child.pid != null) process.kill(proc.child.pid, 'SIGKILL')
    }
    await world?.stop()
    await server?.destroy()
  })

  async function cliOk<T = any> (args: string[]): Promise<T> {
    const r = await runCli(['--json', ...args], ENV)
    assert.equal(r.code, 0, `keyfair ${args.join(' ')} failed: ${r.stderr}`)
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T
  }

  async function start (member: Member): Promise<NodeProcess> {
    const proc = await startNodeProcess(['--repo', member.repo, 'start', '--role', 'escrow', '--listen', `/ip4/127.0.0.1/tcp/${member.port}`], ENV)
    procs.add(proc)
    member.proc = proc
    return proc
  }

  async function stop (member: Member): Promise<void> {
    await member.proc?.stop()
    member.proc = undefined
  }

  /** SIGKILL by pid: no shutdown code runs, the lock's socket is closed by the kernel */
  async function kill (member: Member): Promise<void> {
    const child = member.proc!.child
    const exited = new Promise<void>(resolve => {
      if (child.exitCode != null || child.signalCode != null) resolve()
      else child.once('exit', () => { resolve() })
    })
    process.kill(child.pid!, 'SIGKILL')
    await exited
    assert.equal(child.signalCode, 'SIGKILL')
    member.proc = undefined
  }

  const addr = (pair: Pair, member: Member): string => `/ip4/127.0.0.1/tcp/${member.port}/p2p/${pair.peer}`
  const mode = async (member: Member): Promise<string | undefined> => (await cliOk<NodeStatus>(['--repo', member.repo, 'status'])).escrow?.mode

  /** An enrolled escrow with its ledger in a new database; b is a copy of a's repo, made while a was stopped */
  async function makePair (name: string): Promise<Pair> {
    const url = await server!.createDatabase(name)
    const a: Member = { repo: join(world.dir, `${name}-a`), port: await freePort() }
    const b: Member = { repo: join(world.dir, `${name}-b`), port: await freePort() }
    await cliOk(['--repo', a.repo, 'init'])
    await cliOk(['--repo', a.repo, 'escrow', 'init', '--bits', '2048', '--unblind-workers', '0', '--ledger', url, '--ledger-password-file', server!.passwordFile])
    const first = await start(a)
    const { code } = world.agencyRole.agency.createEnrollmentCode({ kind: 'escrow', ttlMs: 60_000 })
    await cliOk(['--repo', a.repo, 'escrow', 'enroll', '--agency', world.agency.status().addresses[0]!, '--code', code])
    await stop(a)
    // the same identity, key, credentials and settings; not the running node's lock or API address
    await cp(a.repo, b.repo, { recursive: true, filter: src => !['lock', 'api'].includes(basename(src)) })
    await start(a)
    await start(b)
    const pair: Pair = { peer: first.peerId, n: new Uint8Array(), a, b }
    assert.equal(b.proc!.peerId, pair.peer, 'one escrow, one peer id')
    const probe = await world.startNode(`${name}-probe`, [])
    pair.n = (await requestEscrowInfo({ connectionManager: probe.streams }, multiaddr(addr(pair, a)), { signal: AbortSignal.timeout(10_000) })).n
    return pair
  }

  /** The same request until an answer (or a refusal), alternating between the escrow's two addresses */
  async function sendRetrying (node: KeyfairNode, pair: Pair, request: Uint8Array, retried: string[] = []): Promise<Uint8Array> {
    const deadline = Date.now() + 60_000
    for (let i = 0; ; i++) {
      const to = multiaddr(addr(pair, i % 2 === 0 ? pair.a : pair.b))
      try {
        return await requestUnblind({ connectionManager: node.streams }, to, request, { signal: AbortSignal.timeout(10_000) })
      } catch (err: any) {
        if (err instanceof RemoteError || Date.now() > deadline) throw err
        retried.push(String(err.code ?? err.name))
        // both processes have one peer id: without this the next attempt reuses the same connection
        await node.libp2p.hangUp(peerIdFromString(pair.peer)).catch(() => {})
        await sleep(150)
      }
    }
  }

  const offer = async (escrows: Array<{ peer: string, n: Uint8Array }>, t: number, price: number): Promise<Uint8Array> => encodeObject(await createOffer({
    sellerKey: world.sellerKey,
    terms: { content: contentIdOf(work.manifest), price, currency: 'EUR', escrows, t, expiry: Date.now() + 3_600_000 },
    title: 'standby', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
  }))

  async function audit (member: Member): Promise<AuditReport> {
    const r = await runCli(['--repo', member.repo, '--json', 'escrow', 'audit'], ENV)
    const report = JSON.parse(r.stdout) as AuditReport
    assert.equal(r.code, report.ok ? 0 : 1, r.stderr)
    return report
  }

  it('answers from one process only: the other stands by, speaks no escrow protocol and refuses operator commands', async function () {
    const pair = await makePair('standby_pair')
    assert.equal(await mode(pair.a), 'active')
    assert.equal(await mode(pair.b), 'standby')
    // separate clients: one peer id at two addresses would otherwise share a connection
    const clients = [await world.startNode('client-a', []), await world.startNode('client-b', [])]
    let answered = 0
    const errors: string[] = []
    for (const [k, member] of [pair.a, pair.b].entries()) {
      try {
        const info = await requestEscrowInfo({ connectionManager: clients[k]!.streams }, multiaddr(addr(pair, member)), { signal: AbortSignal.timeout(10_000) })
        assert.equal(info.peer, pair.peer)
        answered++
      } catch (err: any) {
        errors.push(String(err.name))
      }
    }
    assert.equal(answered, 1, 'exactly one process answers')
    assert.deepEqual(errors, ['UnsupportedProtocolError'], 'the standby does not speak the escrow protocols')
    const standby = await cliOk<NodeStatus>(['--repo', pair.b.repo, 'status'])
    assert.deepEqual(standby.protocols.filter(p => p.includes('escrow')), [])
    const refused = await runCli(['--repo', pair.b.repo, '--json', 'escrow', 'deposit', clients[0]!.status().peerId, '5'], ENV)
    assert.equal(JSON.parse(refused.stderr).error.code, 'ERR_ESCROW_STANDBY')
    const text = await runCli(['--repo', pair.b.repo, 'status'], ENV)
    assert.match(text.stdout, /escrow: +standby/)

    // a graceful stop hands over too
    await stop(pair.a)
    const handed = Date.now()
    while (await mode(pair.b) !== 'active') {
      assert.ok(Date.now() - handed < 10_000, 'the standby takes over within 10 s')
      await sleep(200)
    }
    await start(pair.a)
    assert.equal(await mode(pair.a), 'standby', 'a restarted process stands by for the active one')
    await stop(pair.a)
    await stop(pair.b)
  })

  it('takes over within 10 s of a SIGKILL of the active during a load: a 3-of-5 purchase started before completes, nothing charged twice', async function () {
    const PRICE = 7
    const LOAD = 40
    const pair = await makePair('standby_kill')
    const others = await Promise.all([1, 2, 3, 4].map(async k => world.startEscrow(`other-${k}`)))
    const buyer = await world.startNode('kill-buyer', [])
    const loader = await world.startNode('kill-loader', [])
    const probe = await world.startNode('kill-probe', [])
    const buyerId = buyer.status().peerId
    const loaderId = loader.status().peerId
    await cliOk(['--repo', pair.a.repo, 'escrow', 'deposit', buyerId, '1000'])
    await cliOk(['--repo', pair.a.repo, 'escrow', 'deposit', loaderId, String(LOAD * PRICE)])
    for (const o of others) await o.role.ledger.deposit(buyerId, 1000)

    // the 3-of-5 purchase: the escrow pair is j = 1; the share of j = 2 is taken before the kill
    const d = await world.device('kill-buyer')
    const escrows = [{ peer: pair.peer, n: pair.n }, ...others.map(o => ({ peer: o.peer, n: o.n }))]
    const p = await d.device.beginPurchase({ offer: await offer(escrows, 3, 10), manifest: work.manifestBytes, buyer: buyerId })
    const shares = await Promise.all([1, 2, 3].map(async j => (await d.device.requestShare({ purchase: p.purchase, j })).request))
    const answer2 = await requestUnblind({ connectionManager: buyer.streams }, multiaddr(others[0]!.node.status().addresses[0]!), shares[1]!)
    assert.equal((await d.device.acceptAnswer({ purchase: p.purchase, j: 2, answer: answer2 })).accepted, true)

    // the load: 1-of-1 purchases at the pair, 8 at a time, each retried with the same bytes
    const ld = await world.device('kill-loader')
    const loadOffer = await offer([{ peer: pair.peer, n: pair.n }], 1, PRICE)
    const requests: Uint8Array[] = []
    for (let i = 0; i < LOAD; i++) {
      const lp = await ld.device.beginPurchase({ offer: loadOffer, manifest: work.manifestBytes, buyer: loaderId })
      requests.push((await ld.device.requestShare({ purchase: lp.purchase, j: 1 })).request)
    }
    const retried: string[] = []
    const answers: Uint8Array[] = []
    let next = 0
    const load = Promise.all(Array.from({ length: 8 }, async () => {
      while (next < LOAD) {
        const i = next++
        answers[i] = await sendRetrying(loader, pair, requests[i]!, retried)
      }
    }))
    load.catch(() => {})
    while (answers.filter(a => a != null).length < 5) await sleep(20)

    // the pair's share sent, and the active killed while it may be in flight
    const share1 = sendRetrying(buyer, pair, shares[0]!)
    share1.catch(() => {})
    const killedAt = Date.now()
    await kill(pair.a)
    let takeoverMs = -1
    while (takeoverMs < 0) {
      try {
        await requestEscrowInfo({ connectionManager: probe.streams }, multiaddr(addr(pair, pair.b)), { signal: AbortSignal.timeout(5000) })
        takeoverMs = Date.now() - killedAt
      } catch {
        assert.ok(Date.now() - killedAt < 10_000, 'the standby answers within 10 s of the kill')
        await probe.libp2p.hangUp(peerIdFromString(pair.peer)).catch(() => {})
        await sleep(100)
      }
    }
    console.log(`      standby answering ${takeoverMs} ms after the SIGKILL`)
    assert.ok(takeoverMs < 10_000)

    const answer1 = await share1
    assert.equal((await d.device.acceptAnswer({ purchase: p.purchase, j: 1, answer: answer1 })).accepted, true)
    const answer3 = await requestUnblind({ connectionManager: buyer.streams }, multiaddr(others[1]!.node.status().addresses[0]!), shares[2]!)
    assert.equal((await d.device.acceptAnswer({ purchase: p.purchase, j: 3, answer: answer3 })).accepted, true)
    await d.device.completePurchase({ purchase: p.purchase })

    await load
    assert.equal(answers.length, LOAD)
    console.log(`      load: ${LOAD} purchases, ${retried.length} attempts retried (${[...new Set(retried)].join(', ')})`)
    assert.ok(retried.length > 0, 'the kill landed during the load')
    // every request of the load asked again now: the same stored answer, no new charge
    for (let i = 0; i < LOAD; i += 10) assert.deepEqual(await sendRetrying(loader, pair, requests[i]!), answers[i])

    assert.equal(await mode(pair.b), 'active')
    const accounts = (await cliOk<{ accounts: Array<{ account: string, balance: number }> }>(['--repo', pair.b.repo, 'escrow', 'accounts'])).accounts
    const balance = (id: string): number | undefined => accounts.find(a => a.account === id)?.balance
    assert.equal(balance(loaderId), 0, 'the load charged once per purchase')
    assert.equal(balance(buyerId), 1000 - 10, 'the 3-of-5 purchase charged once at this escrow')
    const holds = (await cliOk<{ holds: Array<{ purchase: string, buyer: string }> }>(['--repo', pair.b.repo, 'escrow', 'holds', '--limit', '1000'])).holds
    assert.equal(holds.length, LOAD + 1)
    assert.equal(new Set(holds.map(h => h.purchase)).size, LOAD + 1, 'one hold per purchase')
    const report = await audit(pair.b)
    assert.deepEqual(report.violations, [])
    assert.equal(report.ok, true)
    assert.equal(report.deposits, 1000 + LOAD * PRICE)
    assert.deepEqual(report.holds, { open: LOAD + 1, released: 0, refunded: 0 })

    // the old active, back: it stands by for the new one
    await start(pair.a)
    assert.equal(await mode(pair.a), 'standby')
    await stop(pair.a)
    await stop(pair.b)
  })

  it('refuses requests while the database restarts (its lock gone), then exactly one process answers again', async function () {
    const pair = await makePair('standby_restart')
    assert.deepEqual([await mode(pair.a), await mode(pair.b)], ['active', 'standby'])
    await server!.stop('fast')
    const stopped = Date.now()
    while (await mode(pair.a) !== 'suspended') {
      assert.ok(Date.now() - stopped < 10_000, 'the active process is suspended once its lock connection is gone')
      await sleep(100)
    }
    // it refuses, retryably, rather than answering without its lock
    const client = await world.startNode('restart-client', [])
    await assert.rejects(requestEscrowInfo({ connectionManager: client.streams }, multiaddr(addr(pair, pair.a)), { signal: AbortSignal.timeout(10_000) }), { code: 'ERR_LEDGER_UNAVAILABLE' })
    assert.equal(await mode(pair.b), 'standby')
    assert.match((await runCli(['--repo', pair.a.repo, 'status'], ENV)).stdout, /escrow: +suspended/)

    await server!.start()
    const restarted = Date.now()
    let modes: Array<string | undefined> = []
    while ((modes = [await mode(pair.a), await mode(pair.b)]).filter(m => m === 'active').length === 0) {
      assert.ok(Date.now() - restarted < 15_000, 'a process takes the lock once the database is back')
      await sleep(200)
    }
    // the other one is, or soon becomes, a plain standby
    await sleep(2500)
    modes = [await mode(pair.a), await mode(pair.b)]
    assert.deepEqual([...modes].sort(), ['active', 'standby'], `one active process, one standby: ${modes.join(', ')}`)
    const clients = [await world.startNode('restart-a', []), await world.startNode('restart-b', [])]
    const answered = await Promise.all([pair.a, pair.b].map(async (member, k) => requestEscrowInfo({ connectionManager: clients[k]!.streams }, multiaddr(addr(pair, member)), { signal: AbortSignal.timeout(10_000) }).then(() => true, () => false)))
    assert.deepEqual(answered, modes.map(m => m === 'active'), 'the active one answers, the other does not')
    const report = await audit(modes[0] === 'active' ? pair.a : pair.b)
    assert.equal(report.ok, true)
    await stop(pair.a)
    await stop(pair.b)
  })
})
