// The escrow on both ledger engines, SQLite and PostgreSQL, from one set of tests. Per engine:
// the ledger store under concurrent transactions; the escrow over real libp2p (every refusal
// leaves the ledger as it was, 200 purchases at once with double spends, receipt, disputes,
// fraud refund, expiry, audit); the escrow as real processes (200 concurrent purchases from 4
// buyer processes, double-spend races, SIGKILL at random points while buyers retry). Then the
// PostgreSQL ledger through an outage.
//
// One throwaway PostgreSQL server (test/helpers/postgres.ts) serves the whole file, started
// on first need and destroyed at the end. Without its binaries the PostgreSQL tests are
// skipped with one line, except in CI (env CI set), where they fail.
import { requirePostgres } from '../helpers/postgres.ts'
import { ledgerStoreSuite } from './suites/ledger-store.ts'
import { outageSuite } from './suites/outage.ts'
import { overLibp2pSuite } from './suites/over-libp2p.ts'
import { processesSuite } from './suites/processes.ts'
import { destroySharedPostgres } from './suites/shared-postgres.ts'
import type { LedgerEngine } from '../../node/escrow/ledger-store.ts'

describe('escrow on both ledger engines', function () {
  after(async function () {
    await destroySharedPostgres()
  })

  for (const engine of ['sqlite', 'postgres'] as const satisfies readonly LedgerEngine[]) {
    describe(`escrow on ${engine}`, function () {
      // one line and a skip for every PostgreSQL test, before any of them starts a world
      if (engine === 'postgres') before(function () { requirePostgres(this) })
      ledgerStoreSuite(engine)
      overLibp2pSuite(engine)
      processesSuite(engine)
      if (engine === 'postgres') outageSuite()
    })
  }
})
