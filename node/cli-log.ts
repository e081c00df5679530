// `keyfair log level [level]`: the running node's log-file level, read or changed now.
import { Command } from 'commander'
import { LOG_LEVELS, parseLogLevel } from './log/levels.ts'
import { ControlClient } from './control/client.ts'
import { print, repoOf } from './cli-output.ts'
import type { GlobalOptions } from './cli-output.ts'

export function addLogCommands (program: Command): void {
  const log = program.command('log')
    .description('the node log file, <repo>/logs/keyfair.log')

  log.command('level')
    .description(`show, or change until the node stops, what the running node's log file records (${LOG_LEVELS.join(', ')}); keyfair config set logLevel keeps it for later starts`)
    .argument('[level]', LOG_LEVELS.join(', '))
    .action(async (level: string | undefined, _opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const body = level == null ? {} : { level: parseLogLevel(level, 'the level') }
      const r = await new ControlClient(repoOf(options)).call('log.level', body)
      print(options, r, () => `log level ${r.level}, writing ${r.file}`)
    })
}
