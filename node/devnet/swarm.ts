/**
 * A local swarm of real keyfair node processes on loopback, each with its own
 * repo: what `keyfair devnet`, the demo, the bench and the tests start nodes with
 * (`npm run swarm` is its command).
 *
 * Every node is a child process of this one, started with an IPC channel: if
 * this process dies, however it dies, each node sees the channel close and
 * stops itself. `stop()` ends them by pid (SIGTERM, then SIGKILL).
 */
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ControlClient } from '../control/client.ts'
import { extraNodeFlags, roleNodeFlags, roleProcessEnv } from '../config.ts'
import { PASSPHRASE_ENV } from '../passphrase.ts'
import { Repo } from '../repo.ts'
import type { ChildProcess } from 'node:child_process'

export const KEYFAIR_BIN = fileURLToPath(new URL('../bin/keyfair.js', import.meta.url))

export type Topology = 'star' | 'tree' | 'chain'

export interface SwarmNodeSpec {
  roles: string[]
  /** keyfair commands run on the node's repo after `init` and before `start` (e.g. ['agency', 'init']) */
  prepare?: string[][]
  /** extra arguments to `keyfair start` */
  startArgs?: string[]
  /** the repo's directory name under the swarm's directory (default: node-<index>) */
  name?: string
  /** environment of this node's process only, over the swarm's (kept when it restarts) */
  env?: NodeJS.ProcessEnv
}

export interface SwarmOptions {
  /** One entry per node; node 0 is the root of the bootstrap graph. */
  nodes: SwarmNodeSpec[]
  topology?: Topology
  /** Wait until every routing table holds at least this many peers (capped at n − 1). */
  minRoutingTable?: number
  readyTimeoutMs?: number
  /** Parent directory for the temporary repos. */
  baseDir?: string
  /**
   * The swarm's own directory, used as it is and always kept: a node whose repo is already
   * there starts on it again, without its `prepare` commands.
   */
  dir?: string
  /** Stops every node started so far and fails the start when aborted */
  signal?: AbortSignal
  /** Leave the repos on disk when the swarm stops (for inspecting them afterwards). */
  keep?: boolean
  /**
   * Environment of every keyfair process. Unless it (or this process's) sets
   * KEYFAIR_PASSPHRASE, the swarm makes one random passphrase for all its repos (`passphrase`).
   */
  env?: NodeJS.ProcessEnv
  /** Called as nodes come up and the DHT fills. */
  onProgress?: (message: string) => void
}

export interface SwarmNode {
  index: number
  /** Index of the node it bootstrapped from (undefined for the root). */
  parent: number | undefined
  /** Hops from the root in the bootstrap graph. */
  depth: number
  roles: string[]
  pid: number
  peerId: string
  addresses: string[]
  repo: string
  /** URL of the node's control API */
  api: string
  process: ChildProcess
  /** Control API of this node. */
  client: ControlClient
  /** stderr of the node (logs, errors). */
  stderr: string[]
}

/** The parent of node i in the bootstrap graph. */
export function bootstrapParent (index: number, topology: Topology): number | undefined {
  if (index === 0) return undefined
  switch (topology) {
    case 'star': return 0
    case 'chain': return index - 1
    case 'tree': return Math.floor((index - 1) / 2)
  }
}

/** Hops between two nodes of the bootstrap graph (a tree in every topology). */
export function bootstrapDistance (a: number, b: number, topology: Topology): number {
  const ancestors = (i: number): number[] => {
    const path = [i]
    for (let p = bootstrapParent(i, topology); p != null; p = bootstrapParent(p, topology)) path.push(p)
    return path
  }
  const pa = ancestors(a)
  const pb = ancestors(b)
  const common = pa.find(x => pb.includes(x)) ?? 0
  return pa.indexOf(common) + pb.indexOf(common)
}

export class Swarm {
  readonly nodes: SwarmNode[] = []
  readonly topology: Topology
  /** the passphrase of every repo of the swarm (their key stores and sealed devices) */
  readonly passphrase: string
  private readonly dir: string
  private readonly env: NodeJS.ProcessEnv
  private readonly keep: boolean
  private stopped = false
  /** each node's own environment, by index, for its restarts */
  private readonly nodeEnv = new Map<number, NodeJS.ProcessEnv>()

  private constructor (dir: string, topology: Topology, env: NodeJS.ProcessEnv, keep: boolean) {
    this.dir = dir
    this.keep = keep
    this.topology = topology
    this.env = env
    this.passphrase = env[PASSPHRASE_ENV] ?? ''
  }

  static async start (options: SwarmOptions): Promise<Swarm> {
    const topology = options.topology ?? 'tree'
    const dir = options.dir ?? await mkdtemp(join(options.baseDir ?? tmpdir(), 'keyfair-swarm-'))
    if (options.dir != null) await mkdir(dir, { recursive: true })
    const given = options.env?.[PASSPHRASE_ENV] ?? process.env[PASSPHRASE_ENV]
    const env = { ...options.env, [PASSPHRASE_ENV]: given != null && given !== '' ? given : randomBytes(16).toString('hex') }
    const swarm = new Swarm(dir, topology, env, options.keep === true || options.dir != null)
    options.signal?.throwIfAborted()
    // a node waiting for its ready event sees its process exit and fails the start
    const abort = (): void => { void swarm.stop() }
    options.signal?.addEventListener('abort', abort, { once: true })
    const progress = options.onProgress ?? (() => {})
    const readyTimeoutMs = options.readyTimeoutMs ?? 60_000
    try {
      // start in waves by depth: a node needs its parent's address to bootstrap
      const depthOf = (i: number): number => bootstrapDistance(i, 0, topology)
      const maxDepth = Math.max(...options.nodes.map((_, i) => depthOf(i)))
      for (let depth = 0; depth <= maxDepth; depth++) {
        const wave = options.nodes.map((spec, index) => ({ spec, index })).filter(({ index }) => depthOf(index) === depth)
        const started = await Promise.all(wave.map(async ({ spec, index }) => swarm.spawnNode(index, spec, depth, options, readyTimeoutMs)))
        for (const node of started) swarm.nodes[node.index] = node
        progress(`started ${swarm.nodes.filter(Boolean).length}/${options.nodes.length} nodes`)
      }
      await swarm.waitForDht(Math.min(options.minRoutingTable ?? 3, options.nodes.length - 1), readyTimeoutMs, progress)
      options.signal?.throwIfAborted()
      return swarm
    } catch (err) {
      await swarm.stop()
      throw err
    } finally {
      options.signal?.removeEventListener('abort', abort)
    }
  }

  get pids (): number[] {
    return this.nodes.map(n => n.pid)
  }

  /** Stops every node this swarm started, by pid, and removes their repos (unless kept). */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await Promise.all(this.children.map(async child => stopProcess(child)))
    if (!this.keep) await rm(this.dir, { recursive: true, force: true })
  }

  private readonly children: ChildProcess[] = []

  /** Stops one node (SIGTERM, or SIGKILL to simulate a crash) and waits for its exit */
  async stopNode (index: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const node = this.nodes[index]
    if (node == null) throw new Error(`no node ${index}`)
    const child = node.process
    if (child.exitCode != null || child.signalCode != null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }

  /** Starts a stopped node again on its repo and address */
  async restartNode (index: number, options: SwarmOptions = { nodes: [] }): Promise<SwarmNode> {
    const node = this.nodes[index]
    if (node == null) throw new Error(`no node ${index}`)
    const restarted = await this.spawnNode(index, { roles: node.roles, name: basename(node.repo), startArgs: ['--listen', node.addresses[0]!.replace(/\/p2p\/.*$/, '')] }, node.depth, options, options.readyTimeoutMs ?? 60_000, false)
    this.nodes[index] = restarted
    return restarted
  }

  private async spawnNode (index: number, spec: SwarmNodeSpec, depth: number, options: SwarmOptions, timeoutMs: number, fresh = true): Promise<SwarmNode> {
    const repo = join(this.dir, spec.name ?? `node-${index}`)
    const parent = bootstrapParent(index, this.topology)
    if (this.stopped) throw new Error('the swarm is stopping')
    if (fresh && spec.prepare != null && !(await new Repo(repo).exists())) {
      await runKeyfair(['--repo', repo, 'init'], this.env)
      for (const command of spec.prepare) await runKeyfair(['--repo', repo, ...command], this.env)
    }
    const args = [KEYFAIR_BIN, '--repo', repo, '--json', 'start', '--init', '--role', spec.roles.join(','), ...(spec.startArgs ?? [])]
    if (parent != null) {
      const address = this.nodes[parent]?.addresses[0]
      if (address == null) throw new Error(`node ${parent} has no address`)
      args.push('--bootstrap', address)
    }
    // the V8 flags and environment `keyfair start` gives itself for its roles (it cannot re-exec a process with an IPC channel)
    if (spec.env != null) this.nodeEnv.set(index, spec.env)
    const env = roleProcessEnv(spec.roles, { ...process.env, ...this.env, ...this.nodeEnv.get(index) })
    const child = spawn(process.execPath, [...roleNodeFlags(spec.roles), ...extraNodeFlags(env), ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env
    })
    this.children.push(child)
    const stderr: string[] = []
    createInterface({ input: child.stderr! }).on('line', line => {
      stderr.push(line)
      if (stderr.length > 200) stderr.shift()
    })
    const ready = await new Promise<any>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`node ${index} not ready within ${timeoutMs} ms: ${stderr.slice(-5).join(' | ')}`)) }, timeoutMs)
      createInterface({ input: child.stdout! }).on('line', line => {
        try {
          const event = JSON.parse(line)
          if (event.event === 'ready') {
            clearTimeout(timer)
            resolve(event)
          }
        } catch {}
      })
      child.once('exit', code => {
        clearTimeout(timer)
        reject(new Error(`node ${index} exited with code ${code} before it was ready: ${stderr.slice(-5).join(' | ')}`))
      })
    })
    return {
      index,
      parent,
      depth,
      roles: spec.roles,
      pid: ready.pid,
      peerId: ready.peerId,
      addresses: ready.addresses,
      repo,
      api: ready.api,
      process: child,
      client: new ControlClient(new Repo(repo)),
      stderr
    }
  }

  private async waitForDht (minPeers: number, timeoutMs: number, progress: (m: string) => void): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const sizes = await Promise.all(this.nodes.map(async n => (await n.client.call('status')).routingTableSize as number))
      const ready = sizes.filter(s => s >= minPeers).length
      if (ready === this.nodes.length) {
        progress(`DHT usable: every routing table has >= ${minPeers} peers (min ${Math.min(...sizes)}, max ${Math.max(...sizes)})`)
        return
      }
      if (Date.now() > deadline) throw new Error(`DHT not usable within ${timeoutMs} ms: routing table sizes ${sizes.join(',')}`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
}

/** One keyfair CLI command to completion; its stderr becomes the error */
async function runKeyfair (args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [KEYFAIR_BIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      if (err != null) reject(new Error(`keyfair ${args.slice(2).join(' ')}: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
  })
}

async function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode != null || child.signalCode != null) return
  const exited = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
  await exited
  clearTimeout(timer)
}
