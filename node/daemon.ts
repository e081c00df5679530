import { logger } from '@libp2p/logger'
import { ControlServer } from './control/server.ts'
import { controlRoutes } from './control/routes.ts'
import { KeyfairNode } from './keyfair-node.ts'
import { KeyfairError } from './errors.ts'
import { installFileLog } from './log/file-log.ts'
import { DEFAULT_LOG_LEVEL } from './log/levels.ts'
import type { FileLog } from './log/file-log.ts'
import type { LogLevel } from './log/levels.ts'
import type { Handler } from './control/routes.ts'
import type { Logger } from '@libp2p/interface'
import type { RoleName } from './config.ts'
import type { Repo } from './repo.ts'
import type { KdfParams } from './keys/keystore.ts'

export interface DaemonInit {
  repo: Repo
  roles: RoleName[]
  listen: string[]
  bootstrap: string[]
  apiPort: number
  /** what `<repo>/logs/keyfair.log` records (default info) */
  logLevel?: LogLevel
  /** the repo's passphrase: unlocks its key store and its sealed device at start */
  passphrase?: string
  /** scrypt cost of a key store this start creates (tests; default N=2^17) */
  keyStoreKdf?: KdfParams
  /** Called once the node serves, with what a user or a script needs to reach it. */
  onReady: (info: ReadyInfo) => void
}

export interface ReadyInfo {
  peerId: string
  addresses: string[]
  roles: RoleName[]
  api: string
  pid: number
  repo: string
  /** plaintext key files of an earlier version this start sealed into the key store and removed */
  sealedKeyFiles: string[]
}

/**
 * Runs a node until SIGINT/SIGTERM, a `stop` request, or (when started by a
 * supervising process over IPC) the parent's exit. Resolves once stopped.
 */
export async function runDaemon (init: DaemonInit): Promise<void> {
  const log = logger('keyfair:daemon')
  const info = logger('keyfair:daemon:info')
  // the passphrase and the API token are masked should any line ever carry them
  const secrets = [init.passphrase ?? '', await init.repo.readToken()]
  const fileLog = installFileLog({ repoPath: init.repo.path, level: init.logLevel ?? DEFAULT_LOG_LEVEL, secrets })
  try {
    await serve(init, fileLog, log, info)
  } catch (err) {
    // a refusal (a wrong passphrase, a busy port) is the user's to read on stderr, and a
    // refused start leaves the repo as it was: only the unexpected is logged
    if (!(err instanceof KeyfairError)) log.error('the node failed - %e', err)
    throw err
  } finally {
    fileLog.close()
  }
}

async function serve (init: DaemonInit, fileLog: FileLog, log: Logger, info: Logger): Promise<void> {
  const node = new KeyfairNode(init)
  await node.start()
  let stopping: Promise<void> | undefined
  const stopped = Promise.withResolvers<void>()
  const shutdown = (why: string): void => {
    if (stopping != null) return
    info('stopping: %s', why)
    stopping = (async () => {
      await control.stop().catch(err => { log.error('control API stop failed - %e', err) })
      await node.stop()
    })().then(stopped.resolve, stopped.reject)
  }
  const routes = { ...controlRoutes(node, () => { shutdown('stop requested') }), 'log.level': logLevelRoute(fileLog, info) }
  const control = new ControlServer({ repo: init.repo, routes, port: init.apiPort })
  try {
    await control.start()
  } catch (err) {
    await node.stop()
    throw err
  }

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping != null) process.exit(130) // a second Ctrl-C: do not wait
    shutdown(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // a supervisor (the swarm script, a test) that dies takes its nodes with it
  if (process.channel != null) process.once('disconnect', () => { shutdown('parent process gone') })

  const status = node.status()
  info('node %s running with roles %s, control API %s, pid %d', status.peerId, status.roles.join(',') || '(none)', control.url, process.pid)
  init.onReady({ peerId: status.peerId, addresses: status.addresses, roles: status.roles, api: control.url, pid: process.pid, repo: init.repo.path, sealedKeyFiles: node.sealedKeyFiles })
  try {
    await stopped.promise
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.channel?.unref()
  }
}

/** `log.level`: the log file's level and path; with `level`, the level from now until the node stops */
function logLevelRoute (fileLog: FileLog, info: Logger): Handler<'log.level'> {
  return async ({ level }) => {
    if (level != null) {
      fileLog.setLevel(level)
      info('log level now %s', level)
    }
    return { level: fileLog.level(), file: fileLog.path }
  }
}
