import { execFile, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import { roleNodeFlags, roleProcessEnv } from '../../node/config.ts'
import { TEST_PASSPHRASE, FAST_KDF } from './keys.ts'

export { isProcessAlive as isAlive } from '../../node/repo.ts'

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * What every CLI process of the tests gets unless a test says otherwise: the repo passphrase
 * (KEYFAIR_PASSPHRASE: '' takes it away) and the cheapest KDF a key store accepts.
 */
export const TEST_ENV: NodeJS.ProcessEnv = { KEYFAIR_PASSPHRASE: TEST_PASSPHRASE, KEYFAIR_KDF_N: String(FAST_KDF.N) }

/** Runs the real `keyfair` CLI in a child process (the Node 24 running the tests). */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise(resolve => {
    execFile(process.execPath, [KEYFAIR_BIN, ...args], { env: { ...process.env, ...TEST_ENV, ...env }, timeout: timeoutMs }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

export interface NodeProcess {
  child: ChildProcess
  peerId: string
  addresses: string[]
  /** plaintext key files the start sealed into the key store (from its ready event) */
  sealedKeyFiles: string[]
  /** SIGTERM, then wait for the exit */
  stop: () => Promise<void>
}

export interface StartOptions {
  /** tie the node to this process by an IPC channel (default); without one it may re-exec itself, as a user's node does */
  ipc?: boolean
  /** Node flags to start it with (default: those of its roles, which it cannot give itself over IPC) */
  nodeFlags?: string[]
}

/** `keyfair start` as a child process; resolves on its ready event */
export async function startNodeProcess (args: string[], env: NodeJS.ProcessEnv = {}, options: StartOptions = {}): Promise<NodeProcess> {
  const role = args.indexOf('--role')
  const roles = role >= 0 ? (args[role + 1] ?? '').split(',') : ['buyer']
  const flags = options.nodeFlags ?? roleNodeFlags(roles)
  const stdio = options.ipc === false ? ['ignore', 'pipe', 'pipe'] as const : ['ignore', 'pipe', 'pipe', 'ipc'] as const
  // over IPC the node cannot re-exec itself into its roles' environment either
  const given = { ...process.env, ...TEST_ENV, ...env }
  const child = spawn(process.execPath, [...flags, KEYFAIR_BIN, '--json', ...args], { stdio: [...stdio], env: options.ipc === false ? given : roleProcessEnv(roles, given) })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', line => stderr.push(line))
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  const ready = await new Promise<{ peerId: string, addresses: string[], sealedKeyFiles: string[] }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      try {
        const event = JSON.parse(line)
        if (event.event === 'ready') resolve(event)
      } catch {}
    })
    child.once('exit', code => { reject(new Error(`node exited with ${code}: ${stderr.join(' | ')}`)) })
  })
  return {
    child,
    peerId: ready.peerId,
    addresses: ready.addresses,
    sealedKeyFiles: ready.sealedKeyFiles,
    stop: async () => {
      if (child.exitCode == null && child.signalCode == null) child.kill('SIGTERM')
      await exited
    }
  }
}
