// The keyfair CLI run on one repo with --json, as a user would from a terminal: the
// devnet sets its nodes up through the same commands, not through private calls.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { KeyfairError } from '../errors.ts'

export const KEYFAIR_BIN = fileURLToPath(new URL('../bin/keyfair.js', import.meta.url))

/**
 * A CLI command that failed: its code and message as the CLI printed them, or this class's
 * code when it printed none that could be read
 */
export class CommandFailedError extends KeyfairError {
  static readonly code = 'ERR_COMMAND_FAILED'
  constructor (command: string, message: string, code: string = CommandFailedError.code) {
    super(`keyfair ${command}: ${message}`, code)
  }
}

const COMMAND_TIMEOUT_MS = 120_000

export type KeyfairCli = <T>(repo: string, args: string[]) => Promise<T>

/** A runner for CLI commands with this environment; the signal kills a command under way */
export function keyfairCli (env: NodeJS.ProcessEnv, signal: AbortSignal): KeyfairCli {
  return async <T>(repo: string, args: string[]): Promise<T> => new Promise<T>((resolve, reject) => {
    const options = { env: { ...process.env, ...env }, signal, timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 << 20 }
    execFile(process.execPath, [KEYFAIR_BIN, '--repo', repo, '--json', ...args], options, (err, stdout, stderr) => {
      if (err == null) {
        resolve(JSON.parse(stdout) as T)
        return
      }
      reject(parseFailure(args.join(' '), stderr, err))
    })
  })
}

function parseFailure (command: string, stderr: string, err: Error): Error {
  if (err.name === 'AbortError') return err
  try {
    const { error } = JSON.parse(stderr) as { error: { code: string, message: string } }
    return new CommandFailedError(command, error.message, error.code)
  } catch {
    return new CommandFailedError(command, stderr.trim() || err.message)
  }
}
