// How the CLI reports a failure: one JSON document `{"error":{"code","message"}}` on stderr
// with --json, else one line that says what to do; exit code 1 either way. Commander's own
// errors (unknown command, missing argument, bad option value) are reported the same way.
import { CommanderError } from 'commander'
import { KeyfairError } from '../protocols/errors.ts'
import type { Command } from 'commander'

export class UsageError extends KeyfairError {
  static readonly code = 'ERR_USAGE'
  /** the command whose --help explains the usage: `keyfair escrow deposit` */
  readonly command: string

  constructor (message: string, command: string) {
    super(message, UsageError.code)
    this.command = command
  }
}

/** `keyfair escrow deposit` for the deposit subcommand */
export function commandPath (command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c != null; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

/**
 * Commander's exit callback: a usage error becomes a UsageError naming the command it
 * concerns; help and version (exit code 0) go on as they are, to end the parse quietly.
 */
export function usageExit (this: Command, err: CommanderError): never {
  if (err.exitCode === 0) throw err
  const path = commandPath(this)
  if (err.code === 'commander.help') throw new UsageError('missing subcommand', path)
  throw new UsageError(err.message.replace(/^error: /, ''), path)
}

export interface ReportContext {
  json: boolean
  /** the repo's log file, named in the message of an unexpected error */
  logFile?: string
}

/** The exit code, after writing the error to stderr (nothing for help or version) */
export function reportError (err: unknown, context: ReportContext): number {
  if (err instanceof CommanderError && err.exitCode === 0) return 0
  const known = err instanceof KeyfairError
  const code = known ? err.code : 'ERR_UNEXPECTED'
  let message = known ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`
  if (!known && context.logFile != null) message += ` (details in ${context.logFile})`
  if (context.json) {
    const details = known ? err.details : undefined
    process.stderr.write(JSON.stringify({ error: { ...details, code, message } }) + '\n')
  } else if (err instanceof UsageError) {
    process.stderr.write(`keyfair: ${message} (see ${err.command} --help)\n`)
  } else {
    process.stderr.write(`keyfair: ${message}\n`)
  }
  if (!known && process.env.DEBUG != null) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
  return 1
}
