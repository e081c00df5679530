/**
 * The processes a fuzz or attack run aims at, each a real `keyfair start` on loopback: an
 * agency, and an escrow that is also a seller (enrolled with that agency, its ledger with
 * one funded account). Only the CLI is used, as an operator would.
 */
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { MIN_KDF_N } from '../../device/store/seal.ts'
import { roleNodeFlags, roleProcessEnv } from '../../node/config.ts'
import { KDF_ENV } from '../../node/keys/keystore.ts'
import { PASSPHRASE_ENV } from '../../node/passphrase.ts'
import { KEYFAIR_BIN } from '../swarm.ts'
import type { ChildProcess } from 'node:child_process'
import type { InboundBudgetSettings } from '../../protocols/toolkit/budget.ts'

export interface TargetProcess {
  name: string
  child: ChildProcess
  pid: number
  peerId: string
  /** a dialable multiaddr ending in /p2p/<peer id> */
  addr: string
  repo: string
}

/**
 * The target repos' passphrase: the caller's $KEYFAIR_PASSPHRASE, else one random
 * passphrase for this run (its repos are thrown away with it), at the cheapest scrypt
 */
const env: NodeJS.ProcessEnv = {
  ...process.env,
  [PASSPHRASE_ENV]: process.env[PASSPHRASE_ENV] ?? randomBytes(18).toString('base64url'),
  [KDF_ENV]: process.env[KDF_ENV] ?? String(MIN_KDF_N)
}

async function cli (repo: string, args: string[], timeoutMs = 120_000): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [KEYFAIR_BIN, '--repo', repo, '--json', ...args], { timeout: timeoutMs, env }, (err, stdout, stderr) => {
      if (err != null) reject(new Error(`keyfair ${args.join(' ')} failed: ${stderr.trim() || err.message}`))
      else resolve(stdout.trim() === '' ? {} : JSON.parse(stdout.trim().split('\n').at(-1)!))
    })
  })
}

async function start (name: string, repo: string, roles: string): Promise<TargetProcess> {
  const child = spawn(process.execPath, [...roleNodeFlags(roles.split(',')), KEYFAIR_BIN, '--json', '--repo', repo, 'start', '--role', roles], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: roleProcessEnv(roles.split(','), env) })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', line => { if (stderr.length < 50) stderr.push(line) })
  const ready = await new Promise<{ peerId: string, addresses: string[] }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      try {
        const event = JSON.parse(line)
        if (event.event === 'ready') resolve(event)
      } catch {}
    })
    child.once('exit', code => { reject(new Error(`${name} exited with ${code}: ${stderr.join(' | ')}`)) })
  })
  return { name, child, pid: child.pid!, peerId: ready.peerId, addr: `${ready.addresses[0]!.replace(/\/p2p\/.*$/, '')}/p2p/${ready.peerId}`, repo }
}

/** Resident memory of a process now and at its peak (VmRSS, VmHWM), MB; Linux only */
export async function memoryOf (pid: number): Promise<{ rss: number, peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

/** Sets a process's VmHWM back to its current RSS (Linux clear_refs 5) */
export async function resetPeak (pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => {})
}

export class TargetWorld {
  readonly dir: string
  readonly agency: TargetProcess
  readonly escrow: TargetProcess
  /** the funded account in the escrow's ledger */
  readonly account: string

  private constructor (dir: string, agency: TargetProcess, escrow: TargetProcess, account: string) {
    this.dir = dir
    this.agency = agency
    this.escrow = escrow
    this.account = account
  }

  /** Creates the repos, starts both processes, enrolls the escrow; `inbound` goes to the escrow's config.json */
  static async create (options: { inbound?: Partial<InboundBudgetSettings>, account: string }): Promise<TargetWorld> {
    const dir = await mkdtemp(join(tmpdir(), 'keyfair-fuzz-'))
    const processes: TargetProcess[] = []
    try {
      const agencyRepo = join(dir, 'agency')
      await cli(agencyRepo, ['init'])
      await cli(agencyRepo, ['agency', 'init', '--bits', '2048'])
      const agency = await start('agency', agencyRepo, 'agency')
      processes.push(agency)
      const escrowRepo = join(dir, 'escrow')
      await cli(escrowRepo, ['init'])
      await cli(escrowRepo, ['escrow', 'init', '--bits', '2048'])
      if (options.inbound != null) {
        const file = join(escrowRepo, 'config.json')
        const config = JSON.parse(await readFile(file, 'utf8'))
        await writeFile(file, JSON.stringify({ ...config, inbound: options.inbound }, null, 2))
      }
      const escrow = await start('escrow', escrowRepo, 'escrow,seller')
      processes.push(escrow)
      const { code } = await cli(agencyRepo, ['agency', 'enroll-code', '--for', 'escrow'])
      await cli(escrowRepo, ['escrow', 'enroll', '--agency', agency.addr, '--code', code])
      await cli(escrowRepo, ['escrow', 'deposit', options.account, '1000'])
      return new TargetWorld(dir, agency, escrow, options.account)
    } catch (err) {
      for (const p of processes) p.child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
      throw err
    }
  }

  get processes (): TargetProcess[] {
    return [this.agency, this.escrow]
  }

  /** Everything the escrow's ledger holds, through its operator's commands */
  async ledger (): Promise<unknown> {
    const repo = this.escrow.repo
    return {
      postings: await cli(repo, ['escrow', 'ledger', '--limit', '10000']),
      holds: await cli(repo, ['escrow', 'holds', '--limit', '10000']),
      accounts: await cli(repo, ['escrow', 'accounts'])
    }
  }

  async audit (): Promise<{ ok: boolean, violations: string[] }> {
    return cli(this.escrow.repo, ['escrow', 'audit'])
  }

  /** Whether both processes are still running */
  alive (): boolean {
    return this.processes.every(p => p.child.exitCode == null && p.child.signalCode == null)
  }

  async stop (): Promise<void> {
    await Promise.all(this.processes.map(async p => {
      if (p.child.exitCode != null || p.child.signalCode != null) return
      const exited = new Promise(resolve => p.child.once('exit', resolve))
      p.child.kill('SIGTERM')
      await exited
    }))
    await rm(this.dir, { recursive: true, force: true })
  }
}
