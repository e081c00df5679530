// `keyfair devnet`: a local marketplace of real node processes on 127.0.0.1 that stays
// up until Ctrl-C or SIGTERM. The first start sets it up through the CLI; later starts
// on the same directory bring the same nodes back on the same addresses.
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { Swarm } from './swarm.ts'
import { keyfairCli } from './cli-runner.ts'
import { lockDevnetDir } from './lock.ts'
import { driveLine, firstCommand } from './report.ts'
import { setUpDevnet } from './setup.ts'
import { parseShapeFlags, resolveShape } from './shape.ts'
import { devnetPassphrase, readDevnetState, writeDevnetState } from './state.ts'
import type { SwarmNode, SwarmNodeSpec } from './swarm.ts'
import type { DevnetReport } from './report.ts'
import type { DevnetMember, DevnetMembers } from './setup.ts'
import type { DevnetShape, ShapeFlags } from './shape.ts'
import type { DevnetState } from './state.ts'

export const DEFAULT_DEVNET_DIR = join(homedir(), '.keyfair-devnet')
const READY_TIMEOUT_MS = 120_000

export interface DevnetOptions {
  dir?: string
  shape: ShapeFlags
  /** stops the devnet: before it is ready, the start fails; after, it stops */
  signal: AbortSignal
  progress: (line: string) => void
  onReady: (report: DevnetReport) => void
  /** a node that exits while the devnet runs */
  onNodeExit: (name: string, pid: number, code: number | null) => void
}

/** Runs the devnet until the signal; resolves once every process it started is gone */
export async function runDevnet (options: DevnetOptions): Promise<{ stopped: number }> {
  const dir = resolve(options.dir ?? DEFAULT_DEVNET_DIR)
  parseShapeFlags(options.shape) // a typo creates no directory
  const release = await lockDevnetDir(dir)
  let swarm: Swarm | undefined
  try {
    const state = await readDevnetState(dir)
    const shape = resolveShape(options.shape, state?.shape)
    const { passphrase, file } = await devnetPassphrase(dir, process.env)
    const specs = nodeSpecs(shape, state)
    options.progress(`${state == null ? 'starting' : 'starting again'} ${specs.length} node processes in ${dir}`)
    swarm = await Swarm.start({
      nodes: specs,
      topology: 'star',
      dir,
      env: { KEYFAIR_PASSPHRASE: passphrase },
      readyTimeoutMs: READY_TIMEOUT_MS,
      signal: options.signal,
      onProgress: options.progress
    })
    const members = membersOf(swarm.nodes)
    let works = state?.works ?? []
    if (state == null) {
      const cli = keyfairCli({ KEYFAIR_PASSPHRASE: passphrase }, options.signal)
      works = await setUpDevnet(dir, shape, members, cli, options.progress)
      await writeDevnetState(dir, { v: 1, shape, listen: listenAddresses(swarm.nodes), works })
    }
    options.signal.throwIfAborted()
    for (const node of swarm.nodes) watchExit(node, options)
    options.onReady(report(dir, shape, swarm.nodes, works, file))
    await aborted(options.signal)
    return { stopped: swarm.nodes.length }
  } finally {
    await swarm?.stop()
    await release()
  }
}

/** The agency first (the root every node bootstraps from), then escrows, sellers, buyers */
function nodeSpecs (shape: DevnetShape, state: DevnetState | undefined): Array<SwarmNodeSpec & { name: string }> {
  const named = (name: string, roles: string[], prepare?: string[][]): SwarmNodeSpec & { name: string } => {
    const listen = state?.listen[name]
    return { name, roles, prepare, startArgs: listen != null ? ['--listen', listen] : [] }
  }
  const count = (n: number, role: string, prepare?: string[][]): Array<SwarmNodeSpec & { name: string }> =>
    Array.from({ length: n }, (_, i) => named(`${role}-${i + 1}`, [role], prepare))
  return [
    named('agency', ['agency'], [['agency', 'init']]),
    ...count(shape.escrows, 'escrow', [['escrow', 'init']]),
    ...count(shape.sellers, 'seller'),
    ...count(shape.buyers, 'buyer')
  ]
}

function member (node: SwarmNode): DevnetMember {
  return { name: nameOf(node), repo: node.repo, peerId: node.peerId, address: node.addresses[0]! }
}

function nameOf (node: SwarmNode): string {
  return node.repo.split(/[\\/]/).pop()!
}

function membersOf (nodes: SwarmNode[]): DevnetMembers {
  const withRole = (role: string): DevnetMember[] => nodes.filter(n => n.roles.includes(role)).map(member)
  return { agency: member(nodes[0]!), escrows: withRole('escrow'), sellers: withRole('seller'), buyers: withRole('buyer') }
}

function listenAddresses (nodes: SwarmNode[]): Record<string, string> {
  return Object.fromEntries(nodes.map(n => [nameOf(n), n.addresses[0]!.replace(/\/p2p\/.*$/, '')]))
}

function report (dir: string, shape: DevnetShape, nodes: SwarmNode[], works: DevnetState['works'], passphraseFile: string | undefined): DevnetReport {
  return {
    event: 'ready',
    dir,
    pid: process.pid,
    shape,
    nodes: nodes.map(n => ({ name: nameOf(n), roles: n.roles, pid: n.pid, peerId: n.peerId, api: n.api, repo: n.repo, addresses: n.addresses, command: driveLine(n.repo, firstCommand(n.roles)) })),
    works,
    passphraseFile
  }
}

function watchExit (node: SwarmNode, options: DevnetOptions): void {
  node.process.once('exit', code => {
    if (!options.signal.aborted) options.onNodeExit(nameOf(node), node.pid, code)
  })
}

async function aborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
}
