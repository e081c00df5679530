import { getCompileCacheDir } from 'node:module'
import { dirname } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { P2P, TCP } from '@multiformats/multiaddr-matcher'
import { BadConfigError, BadMultiaddrError, UnknownRoleError } from './errors.ts'
import { inboundBudgetSettings } from '../protocols/toolkit/budget.ts'
import { parseLogLevel } from './log/levels.ts'
import type { LogLevel } from './log/levels.ts'
import type { InboundBudgetSettings } from '../protocols/toolkit/budget.ts'
import type { Multiaddr } from '@multiformats/multiaddr'

export const ROLE_NAMES = ['buyer', 'seller', 'escrow', 'agency'] as const
export type RoleName = typeof ROLE_NAMES[number]

/** Roles whose long-term secrets live sealed in the repo's key store: they need its passphrase */
export const SEALED_KEY_ROLES: readonly RoleName[] = ['agency', 'escrow', 'seller']

export function needsSealedKeys (roles: readonly string[]): boolean {
  return roles.some(role => (SEALED_KEY_ROLES as readonly string[]).includes(role))
}

/** What `keyfair init` writes to `<repo>/config.json`; flags of `keyfair start` override it. */
export interface NodeConfig {
  v: 1
  /** libp2p listen multiaddrs (TCP). */
  listen: string[]
  /** Multiaddrs with /p2p/<peer id> of peers to join through. */
  bootstrap: string[]
  /** Roles started when none are given on the command line. */
  roles: RoleName[]
  /** Control API port on 127.0.0.1 (0 picks a free port, written to `<repo>/api`). */
  apiPort: number
  /** The budget for inbound data (bytes of unfinished frames); absent fields take the defaults */
  inbound?: Partial<InboundBudgetSettings>
  /** What `<repo>/logs/keyfair.log` records: error, warn, info (the default) or debug */
  logLevel?: LogLevel
  /** The buyer's settings; absent fields take the defaults */
  buyer?: BuyerSettings
}

export interface BuyerSettings {
  /** Bytes of chunks a purchase holds between asking a provider and handing them on */
  inflightBytes?: number
}

/**
 * A purchase's chunks in flight by default: enough for every provider's streams to stay
 * busy. Chunks arrive in fresh buffers that wait in the node until they are written; the
 * more of them wait, the more outlive V8's young collections, and with 8 MiB the node's old
 * generation filled every few megabytes and collected in full each time
 */
export const DEFAULT_INFLIGHT_BYTES = 4 * 1024 * 1024
/** Below this a purchase would ask for little more than one small chunk at a time */
export const MIN_INFLIGHT_BYTES = 64 * 1024

/** The bytes of chunks in flight, from config.json or a flag: a whole number of at least 64 KiB */
export function parseInflightBytes (value: unknown, what: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < MIN_INFLIGHT_BYTES) {
    throw new BadConfigError(`${what} must be a whole number of bytes, at least ${MIN_INFLIGHT_BYTES} (64 KiB), not ${JSON.stringify(value)}`)
  }
  return n
}

export const DEFAULT_CONFIG: NodeConfig = {
  v: 1,
  listen: ['/ip4/127.0.0.1/tcp/0'],
  bootstrap: [],
  roles: ['buyer'],
  apiPort: 0
}

export function parseRoles (roles: string | string[]): RoleName[] {
  const list = (Array.isArray(roles) ? roles : roles.split(','))
    .map(r => r.trim())
    .filter(r => r.length > 0)
  const out: RoleName[] = []
  for (const role of list) {
    if (!(ROLE_NAMES as readonly string[]).includes(role)) throw new UnknownRoleError(role, ROLE_NAMES)
    if (!out.includes(role as RoleName)) out.push(role as RoleName)
  }
  return out
}

function parseMultiaddr (address: string): Multiaddr {
  try {
    return multiaddr(address)
  } catch (err: any) {
    throw new BadMultiaddrError(address, err?.message ?? 'cannot be parsed', { cause: err })
  }
}

/** A listen address must be a TCP multiaddr (keyfair speaks TCP + noise + yamux). */
export function parseListenAddress (address: string): Multiaddr {
  const ma = parseMultiaddr(address)
  if (!TCP.exactMatch(ma)) throw new BadMultiaddrError(address, 'a listen address must look like /ip4/127.0.0.1/tcp/4001')
  return ma
}

/** A bootstrap address must name the peer: /ip4/…/tcp/…/p2p/<peer id>. */
export function parseBootstrapAddress (address: string): Multiaddr {
  const ma = parseMultiaddr(address)
  if (!P2P.matches(ma) || ma.getComponents().at(-1)?.name !== 'p2p') {
    throw new BadMultiaddrError(address, 'a bootstrap address must end in /p2p/<peer id>')
  }
  return ma
}

export function parsePort (value: unknown, what: string): number {
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new BadConfigError(`${what} must be a port number 0..65535`)
  }
  return port
}

/** Validates a parsed config.json, so a hand-edited file fails with a clear message. */
export function validateConfig (value: unknown, file: string): NodeConfig {
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new BadConfigError(`${file}: not a JSON object`)
  const raw = value as Record<string, unknown>
  if (raw.v !== 1) throw new BadConfigError(`${file}: unsupported config version ${String(raw.v)}`)
  const strings = (field: string): string[] => {
    const list = raw[field] ?? []
    if (!Array.isArray(list) || !list.every(s => typeof s === 'string')) throw new BadConfigError(`${file}: ${field} must be a list of strings`)
    return list
  }
  const listen = strings('listen')
  const bootstrap = strings('bootstrap')
  listen.forEach(parseListenAddress)
  bootstrap.forEach(parseBootstrapAddress)
  const config: NodeConfig = {
    v: 1,
    listen,
    bootstrap,
    roles: parseRoles(strings('roles')),
    apiPort: parsePort(raw.apiPort ?? 0, `${file}: apiPort`)
  }
  if (raw.inbound != null) config.inbound = inboundSettings(raw.inbound, file)
  if (raw.logLevel != null) config.logLevel = parseLogLevel(raw.logLevel, `${file}: logLevel`)
  if (raw.buyer != null) config.buyer = buyerSettings(raw.buyer, file)
  return config
}

function buyerSettings (value: unknown, file: string): BuyerSettings {
  if (typeof value !== 'object' || value == null || Array.isArray(value)) throw new BadConfigError(`${file}: buyer must be an object`)
  const out: BuyerSettings = {}
  for (const [key, n] of Object.entries(value)) {
    if (key !== 'inflightBytes') throw new BadConfigError(`${file}: buyer.${key} is not a setting (known: inflightBytes)`)
    // a number in the file: a quoted one is a typing slip worth naming
    if (typeof n !== 'number') throw new BadConfigError(`${file}: buyer.inflightBytes must be a number`)
    out.inflightBytes = parseInflightBytes(n, `${file}: buyer.inflightBytes`)
  }
  return out
}

const INBOUND_FIELDS = ['maxBytes', 'maxPeerBytes', 'tightFraction', 'stallMs', 'sweepMs'] as const

function inboundSettings (value: unknown, file: string): Partial<InboundBudgetSettings> {
  if (typeof value !== 'object' || value == null || Array.isArray(value)) throw new BadConfigError(`${file}: inbound must be an object`)
  const out: Partial<InboundBudgetSettings> = {}
  for (const [key, n] of Object.entries(value)) {
    if (!(INBOUND_FIELDS as readonly string[]).includes(key)) throw new BadConfigError(`${file}: inbound.${key} is not one of ${INBOUND_FIELDS.join(', ')}`)
    if (typeof n !== 'number') throw new BadConfigError(`${file}: inbound.${key} must be a number`)
    out[key as typeof INBOUND_FIELDS[number]] = n
  }
  try {
    inboundBudgetSettings(out)
  } catch (err: any) {
    throw new BadConfigError(`${file}: ${err.message}`, { cause: err })
  }
  return out
}

/**
 * A seller serves whoever asks, whenever they ask, so it goes idle and busy again all day.
 * Each idle spell, V8's memory reducer shrinks the heap and leaves its limit about 8 MB above
 * what is live; serving a work then set V8 marking again after nearly every young collection.
 * Three providers serving 256 MiB each in turn spent 2.7–3.5 s of CPU per download, more than
 * half of it marking, and served 78–108 MB/s; without the reducer 0.9–1.4 s and 137–231 MB/s.
 * A seller's idle heap stays as large as its work made it instead. A node that only buys
 * keeps the reducer: its download needs none of this (its chunks wait in reused buffers), and
 * its idle memory counts. So does a seller that is also an escrow or an agency: after a flood
 * of requests, its memory must come back to what it was (the reducer is what gives it back).
 */
const SELLER_HEAP_FLAG = '--no-memory-reducer'

/**
 * V8 flags for a long-running node of these roles; V8 takes them only at start-up.
 * A node that streams content (a buyer downloads it, a seller serves it) moves chunks
 * through short-lived buffers, and a young generation of the default size lets tens of
 * megabytes of them wait for collection: one semi-space of 1 MiB measured 50 MB less
 * resident memory on a buyer idle and 80 MB less at a purchase's peak. A seller serving
 * 256 MiB with 16 MiB ran 20–45 full collections in 11 purchases of 35 (V8 started marking
 * again right after a full collection while 24 MB were still free under its limit, less than
 * a young generation that size may promote), each such purchase costing it about 2 s of CPU
 * instead of 1.1; with 1 MiB, in 3 of 45. An escrow or an agency serves requests instead:
 * with 1 MiB, scavenges every few requests promoted their objects and the escrow spent 17%
 * of its thread in GC (4% with 16 MiB), so a node that streams no content gets the larger
 * one, and so does a seller that is also an escrow or an agency; a buyer gets the smaller
 * whatever its other roles, its memory bounded first.
 */
export function roleNodeFlags (roles: readonly string[]): string[] {
  const servesRequests = roles.includes('escrow') || roles.includes('agency')
  const onlySells = roles.includes('seller') && !servesRequests
  const flags = [`--max-semi-space-size=${roles.includes('buyer') || onlySells ? 1 : 16}`]
  if (onlySells) flags.push(SELLER_HEAP_FLAG)
  return flags
}

/** The glibc malloc settings of a buyer's processes, with the GLIBC_TUNABLES name of each */
const BUYER_MALLOC_ENV = [
  { name: 'MALLOC_ARENA_MAX', tunable: 'glibc.malloc.arena_max', value: '2' }
] as const

/**
 * The environment for a long-running node of these roles (and its device process): for a
 * buyer, glibc malloc settings added where the environment does not set them already, so
 * a user's own value (or GLIBC_TUNABLES entry) wins. glibc makes up to 8 arenas per core
 * as threads allocate (libuv's pool, V8's helpers), each keeping freed memory for reuse, so
 * an idle node's resident memory grew with the machine's core count; a buyer's few
 * allocating threads need 2. glibc reads it only at start-up. A fixed
 * MALLOC_MMAP_THRESHOLD_ of 32 KiB (each chunk buffer mapped on its own, and unmapped when
 * freed) made a download cost the buyer's node 3.5× the CPU, so it is not set.
 */
export function roleProcessEnv (roles: readonly string[], env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!roles.includes('buyer')) return env
  const out = { ...env }
  const tunables = env.GLIBC_TUNABLES ?? ''
  for (const { name, tunable, value } of BUYER_MALLOC_ENV) {
    if (out[name] == null && !tunables.includes(`${tunable}=`)) out[name] = value
  }
  return out
}

/**
 * Node flags that NODE_OPTIONS refuses (`--cpu-prof`, `--no-memory-reducer`, ...) for a node
 * (`keyfair start` re-executes itself with them, after its roles' own) and the device
 * processes keyfair starts, from KEYFAIR_NODE_FLAGS: for profiling, or an operator's V8 choice
 */
export function extraNodeFlags (env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.KEYFAIR_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)
}

/**
 * The environment for a child process or worker thread that shares this process's compile
 * cache (stripped TypeScript, V8 code), when it has one. `getCompileCacheDir()` names the
 * subdirectory Node made for its version and V8 flags inside the directory it was given;
 * handed that as NODE_COMPILE_CACHE, a child made a second one inside it, a cache of its
 * own that stayed cold until the first such child exited.
 */
export function compileCacheEnv (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const dir = getCompileCacheDir()
  return dir == null ? env : { ...env, NODE_COMPILE_CACHE: dirname(dir) }
}
