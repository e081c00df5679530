// The ledger's schema on PostgreSQL: the same tables as on SQLite (ledger.ts), in
// versioned steps recorded in `schema_version`. Amounts are BIGINT (read back as JS
// numbers, never above 2^53 − 1), signed requests and answers BYTEA.
import { WORLD } from './ledger-store.ts'
import type { PoolClient } from 'pg'

export interface PgMigration {
  version: number
  up: string
}

export const pgLedgerMigrations: PgMigration[] = [{
  version: 1,
  up: `
    CREATE TABLE accounts (
      id TEXT PRIMARY KEY,
      balance BIGINT NOT NULL,
      CONSTRAINT accounts_not_negative CHECK (id = '${WORLD}' OR id LIKE 'hold:%' OR balance >= 0)
    );
    CREATE TABLE entries (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at BIGINT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('deposit', 'withdraw', 'hold', 'release', 'refund', 'expire')),
      hold_id TEXT,
      memo TEXT
    );
    CREATE INDEX entries_hold ON entries (hold_id);
    CREATE TABLE postings (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      entry_id BIGINT NOT NULL REFERENCES entries (id),
      account TEXT NOT NULL,
      amount BIGINT NOT NULL
    );
    CREATE INDEX postings_account ON postings (account);
    CREATE INDEX postings_entry ON postings (entry_id);
    CREATE TABLE holds (
      id TEXT PRIMARY KEY,
      device TEXT NOT NULL,
      purchase TEXT NOT NULL,
      j INTEGER NOT NULL,
      buyer TEXT NOT NULL,
      seller TEXT NOT NULL,
      amount BIGINT NOT NULL CHECK (amount >= 0),
      offer TEXT NOT NULL,
      request TEXT NOT NULL,
      request_bytes BYTEA NOT NULL,
      answer BYTEA NOT NULL,
      created_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('open', 'released', 'refunded')),
      ended_at BIGINT,
      end_entry BIGINT REFERENCES entries (id),
      end_reason TEXT,
      UNIQUE (device, purchase)
    );
    CREATE INDEX holds_open ON holds (state, expires_at);
    CREATE INDEX holds_buyer ON holds (buyer);
    CREATE INDEX holds_request ON holds (request);
  `
}, {
  version: 2,
  // reservations: the price held before anything is answered; one open per (device, purchase)
  up: `
    CREATE TABLE reservations (
      id TEXT PRIMARY KEY,
      device TEXT NOT NULL,
      purchase TEXT NOT NULL,
      j INTEGER NOT NULL,
      buyer TEXT NOT NULL,
      seller TEXT NOT NULL,
      amount BIGINT NOT NULL CHECK (amount >= 0),
      offer TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('open', 'answered', 'cancelled', 'expired')),
      hold_id TEXT,
      ended_at BIGINT,
      end_reason TEXT
    );
    CREATE UNIQUE INDEX reservations_open ON reservations (device, purchase) WHERE state = 'open';
    CREATE INDEX reservations_due ON reservations (state, expires_at);
    CREATE INDEX reservations_buyer ON reservations (buyer, purchase);
  `
}]

/** any constant: serialises escrows starting on one database while they migrate it */
const MIGRATION_LOCK = 0x6b657966

/** Applies the steps not yet recorded, all in one transaction (DDL is transactional here) */
export async function migratePg (client: PoolClient, migrations: PgMigration[] = pgLedgerMigrations): Promise<number> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())')
    const { rows } = await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_version')
    let current = rows[0]?.v ?? 0
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (migration.version <= current) continue
      await client.query(migration.up)
      await client.query('INSERT INTO schema_version (version) VALUES ($1)', [migration.version])
      current = migration.version
    }
    await client.query('COMMIT')
    return current
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  }
}
