// The settings `keyfair config get|set` knows: each key's type, parsed from the text a user
// types and shown back as text. Everything else in config.json is edited by hand.
import { BadConfigError } from './errors.ts'
import { DEFAULT_INFLIGHT_BYTES, parseBootstrapAddress, parseInflightBytes, parseListenAddress, parsePort, parseRoles, ROLE_NAMES } from './config.ts'
import { LOG_LEVELS, DEFAULT_LOG_LEVEL, parseLogLevel } from './log/levels.ts'
import type { NodeConfig } from './config.ts'

export class UnknownConfigKeyError extends BadConfigError {
  constructor (key: string) {
    super(`unknown config key '${key}' (known: ${Object.keys(CONFIG_KEYS).join(', ')})`)
  }
}

interface ConfigKey {
  what: string
  get: (config: NodeConfig) => unknown
  set: (config: NodeConfig, text: string) => void
}

const list = (text: string): string[] => text.split(',').map(s => s.trim()).filter(s => s !== '')

const INBOUND = ['maxBytes', 'maxPeerBytes', 'tightFraction', 'stallMs', 'sweepMs'] as const

export const CONFIG_KEYS: Record<string, ConfigKey> = {
  roles: {
    what: `roles a plain start runs, comma-separated (${ROLE_NAMES.join(', ')})`,
    get: c => c.roles,
    set: (c, text) => { c.roles = parseRoles(text) }
  },
  listen: {
    what: 'listen multiaddrs, comma-separated',
    get: c => c.listen,
    set: (c, text) => { c.listen = list(text).map(a => parseListenAddress(a).toString()) }
  },
  bootstrap: {
    what: "bootstrap peers /ip4/…/tcp/…/p2p/<id>, comma-separated ('' for none)",
    get: c => c.bootstrap,
    set: (c, text) => { c.bootstrap = list(text).map(a => parseBootstrapAddress(a).toString()) }
  },
  apiPort: {
    what: 'control API port on 127.0.0.1 (0: any free port)',
    get: c => c.apiPort,
    set: (c, text) => { c.apiPort = parsePort(text, 'apiPort') }
  },
  logLevel: {
    what: `what the log file records: ${LOG_LEVELS.join(', ')}`,
    get: c => c.logLevel ?? DEFAULT_LOG_LEVEL,
    set: (c, text) => { c.logLevel = parseLogLevel(text, 'logLevel') }
  },
  'buyer.inflightBytes': {
    what: 'bytes of chunks a purchase holds in flight (at least 65536)',
    get: c => c.buyer?.inflightBytes ?? DEFAULT_INFLIGHT_BYTES,
    set: (c, text) => { c.buyer = { ...c.buyer, inflightBytes: parseInflightBytes(text, 'buyer.inflightBytes') } }
  },
  ...Object.fromEntries(INBOUND.map(field => [`inbound.${field}`, {
    what: `inbound budget: ${field}`,
    get: (c: NodeConfig) => c.inbound?.[field] ?? null,
    set: (c: NodeConfig, text: string) => {
      if (!/^\d+(\.\d+)?$/.test(text.trim())) throw new BadConfigError(`inbound.${field} must be a number`)
      c.inbound = { ...c.inbound, [field]: Number(text) }
    }
  }]))
}

export function configKey (key: string): ConfigKey {
  if (!Object.hasOwn(CONFIG_KEYS, key)) throw new UnknownConfigKeyError(key)
  return CONFIG_KEYS[key]!
}

/** A value as `config get` prints it: lists comma-separated */
export function showValue (value: unknown): string {
  if (Array.isArray(value)) return value.join(',')
  return value == null ? '' : String(value)
}
