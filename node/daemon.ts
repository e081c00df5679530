import { logger } from '@libp2p/logger'
import { ControlServer } from './control/server.ts'
import { controlRoutes } from './control/routes.ts'
import { KeyfairNode } from './keyfair-node.ts'
import type { RoleName } from './config.ts'
import type { Repo } from './repo.ts'
import type { KdfParams } from './keys/keystore.ts'

export interface DaemonInit {
  repo: Repo
  roles: RoleName[]
  listen: string[]
  bootstrap: string[]
  apiPort: number
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
  const node = new KeyfairNode(init)
  await node.start()
  let stopping: Promise<void> | undefined
  const stopped = Promise.withResolvers<void>()
  const shutdown = (why: string): void => {
    if (stopping != null) return
    log('stopping: %s', why)
    stopping = (async () => {
      await control.stop().catch(err => { log.error('control API stop failed - %e', err) })
      await node.stop()
    })().then(stopped.resolve, stopped.reject)
  }
  const control = new ControlServer({ repo: init.repo, routes: controlRoutes(node, () => { shutdown('stop requested') }), port: init.apiPort })
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
  init.onReady({ peerId: status.peerId, addresses: status.addresses, roles: status.roles, api: control.url, pid: process.pid, repo: init.repo.path, sealedKeyFiles: node.sealedKeyFiles })
  try {
    await stopped.promise
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.channel?.unref()
  }
}
