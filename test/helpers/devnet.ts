// `keyfair devnet` as a child process, as a user starts it in a terminal: its stdout
// lines collected, a wait for the line that says it is ready, and a stop by signal.
import { spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import { TEST_ENV } from './cli.ts'

export interface DevnetProcess {
  child: ChildProcess
  /** every stdout line so far */
  lines: string[]
  stderr: string[]
  /** the exit code (null when a signal ended it) */
  exited: Promise<number | null>
  /** resolves with the lines up to the first one matching, or fails at the exit or the deadline */
  waitForLine: (pattern: RegExp, timeoutMs: number) => Promise<string>
}

export function startDevnet (args: string[], env: NodeJS.ProcessEnv = {}): DevnetProcess {
  const child = spawn(process.execPath, [KEYFAIR_BIN, 'devnet', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...TEST_ENV, ...env } })
  const lines: string[] = []
  const stderr: string[] = []
  const listeners = new Set<() => void>()
  createInterface({ input: child.stdout! }).on('line', line => {
    lines.push(line)
    for (const l of listeners) l()
  })
  createInterface({ input: child.stderr! }).on('line', line => { stderr.push(line) })
  const exited = new Promise<number | null>(resolve => { child.once('exit', code => { resolve(code) }) })
  const waitForLine = async (pattern: RegExp, timeoutMs: number): Promise<string> => new Promise((resolve, reject) => {
    const check = (): void => {
      const line = lines.find(l => pattern.test(l))
      if (line == null) return
      done()
      resolve(line)
    }
    const timer = setTimeout(() => { done(); reject(new Error(`no line ${pattern} within ${timeoutMs} ms: ${[...lines, ...stderr].slice(-10).join(' | ')}`)) }, timeoutMs)
    const onExit = (): void => { done(); reject(new Error(`devnet exited before ${pattern}: ${[...lines, ...stderr].slice(-10).join(' | ')}`)) }
    const done = (): void => { clearTimeout(timer); listeners.delete(check); child.off('exit', onExit) }
    listeners.add(check)
    child.once('exit', onExit)
    check()
  })
  return { child, lines, stderr, exited, waitForLine }
}

/** Pids of live processes whose command line names this path (Linux /proc; empty elsewhere) */
export async function processesNaming (path: string): Promise<number[]> {
  const entries = await readdir('/proc').catch(() => [] as string[])
  const found: number[] = []
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes(path)) found.push(Number(entry))
  }
  return found
}
