// The `keyfair` command line, assembled from each domain's commands: every command that talks
// to the running node makes a call of the control API's contract (control/api.ts).
import { existsSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { KeyfairError } from '../protocols/errors.ts'
import { addDevnetCommand } from './devnet/command.ts'
import { VERSION } from './keyfair-node.ts'
import { addConfigCommands } from './cli-config.ts'
import { addLogCommands } from './cli-log.ts'
import { addCompletionCommand } from './cli-completion.ts'
import { addNodeCommands } from './cli-node.ts'
import { addMarketCommands } from './cli-market.ts'
import { addDeviceCommands } from './cli-device.ts'
import { addBalanceCommand, addEscrowCommands } from './cli-escrow.ts'
import { addAgencyCommands } from './cli-agency.ts'
import { reportError, usageExit } from './cli-errors.ts'
import { logFilePath } from './log/levels.ts'
import { appendLogLine } from './log/rotating-file.ts'
import { repoOf } from './cli-output.ts'
import type { GlobalOptions } from './cli-output.ts'

export { formatDuration, parseDuration } from './cli-call.ts'

export function buildProgram (): Command {
  const program = new Command('keyfair')
    .description('peer-to-peer content marketplace with blind-key escrow')
    .version(VERSION)
    .option('--repo <dir>', 'node repo directory (default: $KEYFAIR_REPO or ~/.keyfair)')
    .option('--json', 'machine-readable output (one JSON document per line)')
    // usage errors are reported by main(), as every other error: one line, or JSON with --json
    .exitOverride(usageExit)
    .configureOutput({
      outputError: () => {},
      // help shown for a usage error would break the one JSON document of --json
      writeErr: str => { if (program.opts().json !== true) process.stderr.write(str) }
    })

  addNodeCommands(program)
  addBalanceCommand(program)
  addConfigCommands(program)
  addLogCommands(program)
  addAgencyCommands(program)
  addDeviceCommands(program)
  addEscrowCommands(program)
  addMarketCommands(program)
  addDevnetCommand(program)
  addCompletionCommand(program)
  return program
}

export async function main (argv: string[]): Promise<void> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (err: unknown) {
    process.exitCode = reportError(err, { json: argv.includes('--json'), logFile: logUnexpected(program, err) })
  }
}

/** An unexpected error's stack goes to the repo's log file, when there is a repo: its path, else undefined */
function logUnexpected (program: Command, err: unknown): string | undefined {
  if (err instanceof KeyfairError || err instanceof CommanderError) return undefined
  const repo = repoOf(program.opts<GlobalOptions>())
  if (!existsSync(repo.identityFile)) return undefined
  const file = logFilePath(repo.path)
  const stack = err instanceof Error ? (err.stack ?? err.message) : String(err)
  return appendLogLine(file, `${new Date().toISOString()} ERROR keyfair:cli ${stack}\n`) ? file : undefined
}
