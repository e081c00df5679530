// The node's log file, `<repo>/logs/keyfair.log`: always written, at a chosen level, whatever
// DEBUG says. keyfair's components log through @libp2p/logger (weald, a port of `debug`):
// `log()` is the debug level, `log.error()` its `:error` namespace, and `:warn` / `:info`
// namespaces the two levels between. The file gets the keyfair namespaces its level admits;
// stderr keeps getting exactly what DEBUG names, as before.
import { format } from 'node:util'
import debug from 'weald'
import { RotatingFile } from './rotating-file.ts'
import { redact } from './redact.ts'
import { logFilePath, namespaceLevel, levelNamespaces } from './levels.ts'
import type { LogLevel } from './levels.ts'

/** The parts of weald that `debug` documents for replacing its output */
interface DebugInstance { namespace: string }
interface WealdHooks {
  formatArgs: (this: DebugInstance, args: unknown[]) => void
  log: (this: DebugInstance, ...args: unknown[]) => void
  enable: (namespaces: string) => void
}

export interface FileLogInit {
  repoPath: string
  level: LogLevel
  /** strings masked wherever they would appear in a line: the repo passphrase, the API token */
  secrets?: string[]
  maxBytes?: number
}

export interface FileLog {
  readonly path: string
  level: () => LogLevel
  setLevel: (level: LogLevel) => void
  close: () => void
}

/** A matcher for `debug`-style namespace patterns: `a:*,-a:b` */
export function namespaceMatcher (patterns: string): (namespace: string) => boolean {
  const names: RegExp[] = []
  const skips: RegExp[] = []
  for (const part of patterns.split(/[\s,]+/).filter(p => p !== '')) {
    const skip = part.startsWith('-')
    const body = (skip ? part.slice(1) : part).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*?')
    ;(skip ? skips : names).push(new RegExp(`^${body}$`))
  }
  return namespace => !skips.some(r => r.test(namespace)) && names.some(r => r.test(namespace))
}

let installed: FileLog | undefined

/**
 * Sends every keyfair log line at `level` or above to the repo's log file, in this process,
 * from now on. One per process: a second call replaces the first.
 */
export function installFileLog (init: FileLogInit): FileLog {
  installed?.close()
  const weald = debug as unknown as WealdHooks
  const stderrPatterns = process.env.DEBUG ?? ''
  const toStderr = namespaceMatcher(stderrPatterns)
  const file = new RotatingFile(logFilePath(init.repoPath), { maxBytes: init.maxBytes })
  const secrets = (init.secrets ?? []).filter(s => s.length >= 4)
  let level = init.level
  let toFile = namespaceMatcher(levelNamespaces(level))
  const originalFormat = weald.formatArgs
  const originalLog = weald.log
  // weald hands log() the arguments formatArgs decorated for a terminal; the file wants them plain
  let plain: unknown[] = []
  weald.formatArgs = function (args) {
    plain = args.slice()
    if (toStderr(this.namespace)) originalFormat.call(this, args)
  }
  weald.log = function (...args) {
    if (toStderr(this.namespace)) originalLog.apply(this, args)
    if (toFile(this.namespace)) {
      const text = redact(format(...plain), secrets)
      file.write(`${new Date().toISOString()} ${namespaceLevel(this.namespace).toUpperCase().padEnd(5)} ${this.namespace} ${text}\n`)
    }
  }
  const enable = (): void => {
    weald.enable([stderrPatterns, levelNamespaces(level)].filter(p => p !== '').join(','))
    // weald's enable() writes DEBUG into the environment, which child processes would inherit
    if (stderrPatterns === '') delete process.env.DEBUG
    else process.env.DEBUG = stderrPatterns
  }
  enable()
  const log: FileLog = {
    path: file.path,
    level: () => level,
    setLevel (next) {
      level = next
      toFile = namespaceMatcher(levelNamespaces(level))
      enable()
    },
    close () {
      weald.formatArgs = originalFormat
      weald.log = originalLog
      weald.enable(stderrPatterns)
      if (stderrPatterns === '') delete process.env.DEBUG
      file.close()
      if (installed === log) installed = undefined
    }
  }
  installed = log
  return log
}
