// A `keyfair start --role escrow` process for the process-level escrow tests, driven through
// the CLI as an operator would: init, enrol with the test world's agency, deposits, holds,
// audit; SIGKILL by pid and restart on the same repo and port.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { multiaddr } from '@multiformats/multiaddr'
import { requestEscrowInfo } from '../../../protocols/escrow/info.ts'
import { runCli, startNodeProcess } from '../../helpers/cli.ts'
import { freePort } from '../../helpers/nodes.ts'
import type { ChildProcess } from 'node:child_process'
import type { AuditReport, HoldRecord } from '../../../node/escrow/ledger.ts'
import type { LedgerEngine } from '../../../node/escrow/ledger-store.ts'
import type { KeyfairNode } from '../../../node/keyfair-node.ts'
import type { NodeProcess } from '../../helpers/cli.ts'
import type { World } from '../../helpers/escrow-world.ts'
import type { TestWork } from '../../helpers/market.ts'
import type { PgServer } from '../../helpers/postgres.ts'

/** a hold as `escrow holds --json` lists it: without the request and answer bytes */
export type HoldJson = Omit<HoldRecord, 'answer' | 'requestBytes'>

/** What escrow and buyer processes run against, and what `after` must end */
export interface ProcessHost {
  world: World
  /** an in-process node to ask a new escrow for its public key */
  client: KeyfairNode
  /** every process started, so `after` can end what a failed test left running */
  children: Set<ChildProcess>
  escrows: EscrowProcess[]
  /** where a PostgreSQL escrow keeps its ledger */
  server?: PgServer
  /** the work on sale, and its manifest in a file for the buyer processes */
  work: TestWork
  manifestFile: string
}

/** A `keyfair start --role escrow` process on a fixed loopback port, restartable on the same repo and port */
export class EscrowProcess {
  readonly repo: string
  readonly port: number
  private readonly children: Set<ChildProcess>
  peer = ''
  n: Uint8Array = new Uint8Array()
  private proc?: NodeProcess

  constructor (repo: string, port: number, children: Set<ChildProcess>) {
    this.repo = repo
    this.port = port
    this.children = children
  }

  /** its ledger in SQLite, or in a new database of the host's server */
  static async create (host: ProcessHost, name: string, engine: LedgerEngine): Promise<EscrowProcess> {
    const { world, client, server } = host
    const e = new EscrowProcess(join(world.dir, name), await freePort(), host.children)
    host.escrows.push(e)
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
    this.children.add(this.proc.child)
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

export async function cliOk<T = any> (args: string[]): Promise<T> {
  const r = await runCli(['--json', ...args])
  assert.equal(r.code, 0, `keyfair ${args.join(' ')} failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T
}
