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
}, {
  version: 3,
  // a hold's rules in the server, so a group of holds is one statement, not ten round trips
  // each; the same rules as openHoldIn on SQLite (ledger.ts). The caller has locked the buyers'
  // rows; a VOLATILE function sees what the group's earlier holds wrote.
  up: `
    CREATE FUNCTION keyfair_open_hold (
      p_id TEXT, p_device TEXT, p_purchase TEXT, p_j INTEGER, p_buyer TEXT, p_seller TEXT,
      p_amount BIGINT, p_offer TEXT, p_request TEXT, p_request_bytes BYTEA, p_answer BYTEA,
      p_created BIGINT, p_expires BIGINT
    ) RETURNS TABLE (o_outcome TEXT, o_hold TEXT, o_balance BIGINT)
    LANGUAGE plpgsql VOLATILE AS $fn$
    DECLARE
      v_used holds%ROWTYPE;
      v_reserved reservations%ROWTYPE;
      v_balance BIGINT;
      v_entry BIGINT;
      v_from TEXT;
      v_to TEXT := 'hold:' || p_id;
    BEGIN
      SELECT * INTO v_used FROM holds h WHERE h.device = p_device AND h.purchase = p_purchase;
      IF v_used.id IS NOT NULL THEN
        RETURN QUERY SELECT CASE WHEN v_used.request = p_request THEN 'replay' ELSE 'used' END, v_used.id, NULL::BIGINT;
        RETURN;
      END IF;
      -- the purchase's reservation, locked: a cancel waits, then finds it answered
      SELECT * INTO v_reserved FROM reservations r WHERE r.device = p_device AND r.purchase = p_purchase AND r.state = 'open' FOR UPDATE;
      IF v_reserved.id IS NOT NULL AND (v_reserved.buyer <> p_buyer OR v_reserved.offer <> p_offer OR v_reserved.amount <> p_amount) THEN
        RETURN QUERY SELECT 'used', NULL::TEXT, NULL::BIGINT;
        RETURN;
      END IF;
      SELECT a.balance INTO v_balance FROM accounts a WHERE a.id = p_buyer;
      v_balance := COALESCE(v_balance, 0);
      IF v_reserved.id IS NULL AND v_balance < p_amount THEN
        RETURN QUERY SELECT 'funds', NULL::TEXT, v_balance;
        RETURN;
      END IF;
      INSERT INTO holds (id, device, purchase, j, buyer, seller, amount, offer, request, request_bytes, answer, created_at, expires_at, state)
        VALUES (p_id, p_device, p_purchase, p_j, p_buyer, p_seller, p_amount, p_offer, p_request, p_request_bytes, p_answer, p_created, p_expires, 'open')
        ON CONFLICT (device, purchase) DO NOTHING;
      IF NOT FOUND THEN
        -- another transaction took this purchase id since the read above, and committed
        SELECT * INTO v_used FROM holds h WHERE h.device = p_device AND h.purchase = p_purchase;
        IF v_used.id IS NULL THEN RAISE EXCEPTION 'purchase % conflicted but is not there', p_purchase; END IF;
        RETURN QUERY SELECT CASE WHEN v_used.request = p_request THEN 'replay' ELSE 'used' END, v_used.id, NULL::BIGINT;
        RETURN;
      END IF;
      -- a reserved price becomes the hold: the buyer was charged once, at the reservation
      v_from := CASE WHEN v_reserved.id IS NULL THEN p_buyer ELSE 'reserve:' || v_reserved.id END;
      INSERT INTO entries (at, kind, hold_id, memo)
        VALUES (p_created, 'hold', p_id, CASE WHEN v_reserved.id IS NULL THEN NULL ELSE 'reservation ' || v_reserved.id END)
        RETURNING id INTO v_entry;
      INSERT INTO postings (entry_id, account, amount) VALUES (v_entry, v_from, -p_amount), (v_entry, v_to, p_amount);
      INSERT INTO accounts (id, balance) VALUES (v_from, 0), (v_to, 0) ON CONFLICT (id) DO NOTHING;
      UPDATE accounts SET balance = accounts.balance - p_amount WHERE accounts.id = v_from;
      UPDATE accounts SET balance = accounts.balance + p_amount WHERE accounts.id = v_to;
      IF v_reserved.id IS NOT NULL THEN
        UPDATE reservations SET state = 'answered', hold_id = p_id, ended_at = p_created, end_reason = 'answered' WHERE reservations.id = v_reserved.id;
      END IF;
      RETURN QUERY SELECT 'charged', p_id, NULL::BIGINT;
    END
    $fn$;
  `
}, {
  version: 4,
  // a seller's sales listed by the seller's peer id; and the whole group commit in one statement, so one round trip (a statement outside BEGIN
  // is its own transaction): the buyers' rows locked in one fixed order, then each hold by
  // keyfair_open_hold in the group's order
  up: `
    CREATE INDEX holds_seller ON holds (seller);
    CREATE FUNCTION keyfair_open_holds (
      p_id TEXT[], p_device TEXT[], p_purchase TEXT[], p_j INTEGER[], p_buyer TEXT[], p_seller TEXT[],
      p_amount BIGINT[], p_offer TEXT[], p_request TEXT[], p_request_bytes BYTEA[], p_answer BYTEA[],
      p_created BIGINT[], p_expires BIGINT[]
    ) RETURNS TABLE (o_outcome TEXT, o_hold TEXT, o_balance BIGINT)
    LANGUAGE plpgsql VOLATILE AS $fn$
    BEGIN
      PERFORM 1 FROM accounts a WHERE a.id = ANY(p_buyer) ORDER BY a.id COLLATE "C" FOR UPDATE;
      FOR i IN 1 .. coalesce(array_length(p_id, 1), 0) LOOP
        RETURN QUERY SELECT * FROM keyfair_open_hold(p_id[i], p_device[i], p_purchase[i], p_j[i], p_buyer[i], p_seller[i],
          p_amount[i], p_offer[i], p_request[i], p_request_bytes[i], p_answer[i], p_created[i], p_expires[i]);
      END LOOP;
    END
    $fn$;
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
