// Log levels of the node's log file and the logger namespaces each one admits.
import { join } from 'node:path'
import { BadConfigError } from '../errors.ts'

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
export type LogLevel = typeof LOG_LEVELS[number]
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'

export function isLogLevel (value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value)
}

export function parseLogLevel (value: unknown, what = 'log level'): LogLevel {
  if (!isLogLevel(value)) throw new BadConfigError(`${what} must be one of ${LOG_LEVELS.join(', ')}`)
  return value
}

/** `<repo>/logs/keyfair.log` */
export function logFilePath (repoPath: string): string {
  return join(repoPath, 'logs', 'keyfair.log')
}

/** The level of a logger namespace: `keyfair:x:error` error, `:warn` warn, `:info` info, else debug */
export function namespaceLevel (namespace: string): LogLevel {
  const suffix = namespace.slice(namespace.lastIndexOf(':') + 1)
  return suffix === 'error' || suffix === 'warn' || suffix === 'info' ? suffix : 'debug'
}

/** `debug` patterns of the keyfair namespaces at `level` or above */
export function levelNamespaces (level: LogLevel): string {
  if (level === 'debug') return 'keyfair:*'
  const admitted = LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(level) + 1)
  return admitted.map(l => `keyfair:*:${l}`).join(',')
}
