import { execFile, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import { roleNodeFlags } from '../../node/config.ts'

export { isProcessAlive as isAlive } from '../../node/repo.ts'

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the real `keyfair` CLI in a child process (the Node 24 running the tests). */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise(resolve => {
    execFile(process.execPath, [KEYFAIR_BIN, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

export interface NodeProcess {
  child: ChildProcess
  peerId: string
  addresses: string[]
  /** SIGTERM, then wait for the exit */
  stop: () => Promise<void>
}

/** `keyfair start` as a child process (tied to this one by IPC); resolves on its ready event */
export async function startNodeProcess (args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
  // the flags `keyfair start` would give itself for its roles (it cannot re-exec a process with an IPC channel)
  const role = args.indexOf('--role')
  const flags = roleNodeFlags(role >= 0 ? (args[role + 1] ?? '').split(',') : ['buyer'])
  const child = spawn(process.execPath, [...flags, KEYFAIR_BIN, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, ...env } })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', line => stderr.push(line))
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  const ready = await new Promise<{ peerId: string, addresses: string[] }>((resolve, reject) => {
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
    stop: async () => {
      if (child.exitCode == null && child.signalCode == null) child.kill('SIGTERM')
      await exited
    }
  }
}
