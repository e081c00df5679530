// What the devnet prints once ready: each node's role, pid, peer id, control address and
// a command line that drives it from another terminal, then the sample works.
import type { SampleWork } from './state.ts'
import type { DevnetShape } from './shape.ts'
import { describeShape } from './shape.ts'

export interface NodeReport {
  name: string
  roles: string[]
  pid: number
  peerId: string
  api: string
  repo: string
  addresses: string[]
  /** a command to run against this node from another terminal */
  command: string
}

export interface DevnetReport {
  event: 'ready'
  dir: string
  pid: number
  shape: DevnetShape
  nodes: NodeReport[]
  works: SampleWork[]
  /** where the repos' passphrase is kept (absent when it came from $KEYFAIR_PASSPHRASE) */
  passphraseFile?: string
}

/** A word for a POSIX shell: quoted unless it is plainly safe */
export function shellWord (word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`
}

/** `KEYFAIR_REPO=<repo> npx keyfair <args>` */
export function driveLine (repo: string, args: string[]): string {
  return [`KEYFAIR_REPO=${shellWord(repo)}`, 'npx', 'keyfair', ...args.map(shellWord)].join(' ')
}

/** What to run first on a node of each role */
export function firstCommand (roles: string[]): string[] {
  if (roles.includes('agency')) return ['agency', 'certs']
  if (roles.includes('escrow')) return ['escrow', 'accounts']
  if (roles.includes('seller')) return ['contents']
  return ['search', 'devnet']
}

export function humanReport (r: DevnetReport): string {
  const width = Math.max(...r.nodes.map(n => n.name.length))
  const lines = r.nodes.flatMap(n => [
    `${n.name.padEnd(width)}  ${n.roles.join(',')}  pid ${n.pid}  peer ${n.peerId}`,
    `${' '.repeat(width)}  control ${n.api}`,
    `${' '.repeat(width)}  ${n.command}`
  ])
  const buyer = r.nodes.find(n => n.roles.includes('buyer'))
  for (const w of r.works) {
    lines.push(`sample work '${w.title}' of ${w.seller}: offer ${w.offer}`, `  content ${w.content}, plaintext ${w.file}`)
    if (buyer != null) lines.push(`  buy it: ${driveLine(buyer.repo, ['buy', w.offer, '--out', 'sample.out'])}`)
  }
  if (r.passphraseFile != null) lines.push(`the repos' passphrase (device unlock, offline commands) is in ${r.passphraseFile}`)
  lines.push(`devnet ready in ${r.dir}: ${describeShape(r.shape)}, ${r.nodes.length} node processes; Ctrl-C stops them all`)
  return lines.join('\n')
}
