// `keyfair devnet`: the command, its flags, and what it prints (text, or one JSON event a
// line with --json). SIGINT and SIGTERM stop every node it started.
import { Command } from 'commander'
import { humanReport } from './report.ts'
import type { ShapeFlags } from './shape.ts'

export function addDevnetCommand (program: Command): void {
  program.command('devnet')
    .description('run a local marketplace on 127.0.0.1 until Ctrl-C: an agency, escrows, sellers with a sample work, buyers with enrolled devices and money')
    .option('--escrows <n>', 'escrows enrolled with the agency (default 3)')
    .option('--threshold <t>', 'escrows a purchase pays (default: a majority)')
    .option('--sellers <n>', 'sellers, each publishing a sample work (default 1)')
    .option('--buyers <n>', 'buyers, each with a certified device and credit at every escrow (default 1)')
    .option('--dir <path>', 'where the nodes\' repos live; a later run on it starts the same devnet (default ~/.keyfair-devnet)')
    .action(async (opts: ShapeFlags & { dir?: string }, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true
      const emit = (event: Record<string, unknown>, line: string): void => {
        process.stdout.write(json ? JSON.stringify(event) + '\n' : line + '\n')
      }
      // loaded here: the swarm's code costs every other command nothing at start-up
      const { runDevnet } = await import('./devnet.ts')
      const stop = new AbortController()
      const onSignal = (): void => { stop.abort() }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      try {
        const { stopped } = await runDevnet({
          dir: opts.dir,
          shape: { escrows: opts.escrows, threshold: opts.threshold, sellers: opts.sellers, buyers: opts.buyers },
          signal: stop.signal,
          progress: message => { emit({ event: 'progress', message }, `devnet: ${message}`) },
          onReady: report => { emit({ ...report }, humanReport(report)) },
          onNodeExit: (name, pid, code) => { emit({ event: 'exited', name, pid, code }, `devnet: ${name} (pid ${pid}) exited with code ${code ?? 'none'}`) }
        })
        emit({ event: 'stopped', nodes: stopped }, `devnet: stopped all ${stopped} node processes`)
      } catch (err) {
        // stopped before it was ready: the nodes are gone, and that is what was asked
        if (!stop.signal.aborted) throw err
        emit({ event: 'stopped' }, 'devnet: stopped before it was ready')
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })
}
