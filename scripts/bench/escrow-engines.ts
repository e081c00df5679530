/**
 * P7: the P2 measurement (escrow unblind requests/s, one escrow process, a load-generator
 * process over libp2p on loopback) with the escrow's ledger on PostgreSQL, against the
 * same with the ledger on SQLite, in the same run: two escrows with identical settings,
 * one per engine, each with its own load generator, batches alternating between them.
 * PostgreSQL is a throwaway server (initdb in a temporary directory, loopback only), reached
 * through its Unix socket as a database on the escrow's own machine would be (over TCP on
 * loopback the kernel's TCP work is charged to the escrow's thread). When its binaries are
 * absent the row is skipped, not failed.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findPgBinaries, startPostgres } from '../../test/helpers/postgres.ts'
import { Swarm } from '../swarm.ts'
import { LoadProcess } from './escrow.ts'
import { fmt, median, paired, row, skippedRow } from './report.ts'
import type { PgServer } from '../../test/helpers/postgres.ts'
import type { SwarmNode } from '../swarm.ts'
import type { Row } from './report.ts'
import type { BatchResult } from './unblind-load.ts'

const PRICE = 1
const SPEC = { id: 'P7', measures: 'P2 on PostgreSQL vs P2 on SQLite (escrow unblind, ledger engine)', unit: 'req/s', target: '≥ 0.8×' }

export async function benchLedgerEngines (options: { quick: boolean, log: (line: string) => void }): Promise<Row> {
  const { quick, log } = options
  const binaries = findPgBinaries()
  if (binaries == null) {
    log('P7: skipped, no PostgreSQL binaries (initdb, pg_ctl, postgres)')
    return skippedRow(SPEC, 'no PostgreSQL')
  }
  const repeats = quick ? 2 : 5
  const batch = quick ? 60 : 400
  const warm = quick ? 30 : 200
  // a smaller key in the smoke run: both engines get the same, the ratio is what counts
  const bits = quick ? 2048 : 3072
  const concurrency = 32
  const started = performance.now()
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-bench-p7-'))
  let server: PgServer | undefined
  let swarm: Swarm | undefined
  const loads: LoadProcess[] = []
  try {
    server = await startPostgres(binaries)
    await server.createDatabase('bench_ledger')
    // the socket's directory as the URL's host (see docs/operations.md); the socket is trusted
    const url = `postgres://${server.user}@${encodeURIComponent(server.dir)}:${server.port}/bench_ledger`
    const init = ['escrow', 'init', '--bits', String(bits)]
    swarm = await Swarm.start({
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [init] },
        { roles: ['escrow'], prepare: [[...init, '--ledger', url, '--ledger-password-file', server.passwordFile]] }
      ],
      topology: 'star',
      baseDir: dir,
      env: { PGPASSWORD: '' }
    })
    const [agency, sqlite, postgres] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode]
    const loopback = (node: SwarmNode): string => node.addresses.find(a => a.startsWith('/ip4/127.0.0.1/'))!
    const total = warm + repeats * batch
    for (const escrow of [sqlite, postgres]) {
      const { code: escrowCode } = await agency.client.call('agency.enrollCode', { kind: 'escrow' })
      await escrow.client.call('escrow.enroll', { agency: loopback(agency), code: escrowCode }, { timeoutMs: 120_000 })
      const { code } = await agency.client.call('agency.enrollCode', { kind: 'device' })
      const load = new LoadProcess({ agency: loopback(agency), code, escrow: loopback(escrow), dir: join(dir, `load-${loads.length}`), total, concurrency, price: PRICE })
      loads.push(load)
      const ready = await load.next(120_000)
      await escrow.client.call('escrow.deposit', { account: ready.peer, amount: total * PRICE, memo: 'bench P7' })
    }
    const [sqliteLoad, pgLoad] = loads as [LoadProcess, LoadProcess]
    log(`P7: two escrows (SQLite, PostgreSQL) and their load generators up in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    for (const load of loads) {
      const warmed = await load.batch('warm', warm)
      if (warmed.failures > 0) throw new Error(`P7: ${warmed.failures} of ${warm} warm-up requests failed: ${warmed.errors.join('; ')}`)
    }
    const batches: Record<'sqlite' | 'postgres', BatchResult[]> = { sqlite: [], postgres: [] }
    const measure = (engine: 'sqlite' | 'postgres', load: LoadProcess) => async (): Promise<number> => {
      const result = await load.batch('go', batch)
      if (result.failures > 0) throw new Error(`P7 (${engine}): ${result.failures} of ${batch} requests failed: ${result.errors.join('; ')}`)
      batches[engine].push(result)
      return result.rps
    }
    const samples = await paired(repeats, measure('postgres', pgLoad), measure('sqlite', sqliteLoad), (i, value, base) => {
      log(`P7: run ${i + 1}/${repeats}: ${fmt(value)} req/s on PostgreSQL vs ${fmt(base)} req/s on SQLite (${(value / base).toFixed(2)}×)`)
    })
    return row({
      id: SPEC.id,
      measures: SPEC.measures,
      unit: 'req/s',
      samples,
      higherIsBetter: true,
      target: 0.8,
      details: {
        requestsPerBatch: batch,
        concurrency,
        bits,
        latencyMs: {
          postgres: { p50: median(batches.postgres.map(b => b.p50)), p99: median(batches.postgres.map(b => b.p99)) },
          sqlite: { p50: median(batches.sqlite.map(b => b.p50)), p99: median(batches.sqlite.map(b => b.p99)) }
        },
        totalMs: Math.round(performance.now() - started)
      }
    })
  } finally {
    for (const load of loads) await load.stop()
    await swarm?.stop()
    await server?.destroy()
    await rm(dir, { recursive: true, force: true })
  }
}
