/**
 * `npm run bench [-- --quick] [-- --only P1,P3]`: what keyfair costs over the raw
 * transport and crypto it stands on. Every figure is a ratio against a baseline measured
 * in the same run (absolute times on shared 2-core machines are noise); each row repeats
 * and reports its median and spread. Prints the machine and the table, and writes
 * `<out>/results-<time>.json` and beside it `<out>/results-<time>.svg`, a chart of the rows.
 *
 *   P1  buy + download + decrypt + verify from one provider vs a raw libp2p stream   ≥ 0.85×
 *   P1c the buyer node's CPU in those runs                  vs the raw fetcher's     ≤ 1.6×
 *   P2  escrow unblind requests/s, one escrow process        vs raw RSA private ops/s ≥ 0.6×
 *   P3  key release latency of a 3-of-5 purchase             vs a 1-of-1 purchase     ≤ 1.3×
 *   P4  download from 3 providers                            vs from 1                ≥ 1.2× (8+ cores),
 *                                                                                      ≥ 0.95× (fewer)
 *   P5  buyer peak RSS buying and playing a 1 GiB work                                ≤ 160 MB,
 *                                                                                      idle node ≤ 120 MB
 *   P6  keyword search on a 50-node swarm                    vs bare findProviders    ≤ 1.5×
 *   P7  P2 with the escrow's ledger on PostgreSQL            vs P2 on SQLite          ≥ 0.8×
 *      (skipped, not failed, where no PostgreSQL binaries are installed)
 *
 * `--quick` is a smoke run (small sizes, a smaller swarm, 2048-bit keys where the row
 * allows it) that checks the benchmarks work; its ratios are not the measurements.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { benchUnblind } from './bench/escrow.ts'
import { benchLedgerEngines } from './bench/escrow-engines.ts'
import { benchMarket } from './bench/market.ts'
import { chart } from './bench/chart.ts'
import { machineOf, table } from './bench/report.ts'
import type { Row } from './bench/report.ts'

// P1c comes with P1, from the same runs
const ROWS = ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7']

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: '.bench' },
    only: { type: 'string' },
    nodes: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (args.help) {
  process.stdout.write('usage: npm run bench -- [--quick] [--only P1,P2,...] [--nodes N] [--out <dir>]\n' +
    '  --nodes N  swarm size of the market rows (default 50, 12 with --quick; P6 is specified at 50)\n')
  process.exit(0)
}
const only = args.only?.split(',').map(s => s.trim().toUpperCase())
const unknown = only?.filter(id => !ROWS.includes(id)) ?? []
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown rows ${unknown.join(', ')} (rows: ${ROWS.join(', ')})\n`)
  process.exit(2)
}
const nodes = args.nodes == null ? undefined : Number(args.nodes)
if (nodes != null && (!Number.isInteger(nodes) || nodes < 12 || nodes > 200)) {
  process.stderr.write('bench: --nodes must be an integer 12..200\n')
  process.exit(2)
}
const wanted = (...ids: string[]): boolean => only == null || ids.some(id => only.includes(id))

const started = Date.now()
const log = (line: string): void => { process.stderr.write(`bench ${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s: ${line}\n`) }
const rows: Row[] = []
if (wanted('P2')) rows.push(await benchUnblind({ quick: args.quick, log }))
if (wanted('P7')) rows.push(await benchLedgerEngines({ quick: args.quick, log }))
if (wanted('P1', 'P3', 'P4', 'P5', 'P6')) rows.push(...await benchMarket({ quick: args.quick, log, only, nodes }))
rows.sort((a, b) => a.id.localeCompare(b.id))

const machine = machineOf()
process.stdout.write(table(rows, machine))
await mkdir(args.out, { recursive: true })
const stem = `${args.out}/results-${new Date().toISOString().replace(/[:.]/g, '-')}`
const file = `${stem}.json`
await writeFile(file, JSON.stringify({ quick: args.quick, machine, seconds: Math.round((Date.now() - started) / 1000), rows }, null, 2))
await writeFile(`${stem}.svg`, chart(rows, machine))
const missed = rows.filter(r => !r.pass && r.skipped == null).map(r => r.id)
process.stdout.write(`\n${rows.length} rows in ${Math.round((Date.now() - started) / 1000)} s${args.quick ? ' (quick smoke run: sizes too small for the targets to mean anything)' : ''}; ${missed.length === 0 ? 'every target met' : `missed: ${missed.join(', ')}`}; results in ${file} (chart: ${stem}.svg)\n`)
