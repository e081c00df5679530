// The ledger on PostgreSQL (docs/protocol.md, Ledger): the same double-entry rules as on SQLite
// (ledger.ts), for an escrow whose ledger must outlive its machine.
// Longer than most files because it mirrors ledger.ts method for method; keeping each engine in
// one file lets the two be read side by side.
//
// Concurrency: every writing transaction runs at READ COMMITTED and takes row locks
// (`SELECT … FOR UPDATE`) on the accounts it moves money from or to, in one fixed order
// (sorted by id, "C" collation), before it reads a balance; so a balance checked is the
// balance debited, two transactions never wait on each other in a cycle, and the CHECK on
// balances stays a last line of defence. Ending a hold first locks its `holds` row, so it
// ends exactly once. Two requests under one (device, purchase) meet at the UNIQUE index:
// the second waits for the first and then reads its row. A deadlock PostgreSQL still
// detects (two escrow processes racing duplicate purchase ids) runs the transaction again.
// The audit reads one REPEATABLE READ snapshot.
import { isDeepStrictEqual } from 'node:util'
import { AlreadyAnsweredError, AmountOutOfRangeError, InsufficientFundsError, LedgerConnectError, LedgerFaultError, LedgerMoveError, LedgerNotEmptyError, PurchaseIdUsedError, UnknownHoldError } from './errors.ts'
import { MAX_AMOUNT, WORLD, checkAmount, holdAccount, reserveAccount } from './ledger-store.ts'
import { createPgPool, inTransaction, isUnavailable, query, statement, unavailable } from './pg-pool.ts'
import { migratePg } from './pg-schema.ts'
import { holdFromRow, reservationFromRow } from './ledger-rows.ts'
import type { HoldRow, ReservationRow } from './ledger-rows.ts'
import type pg from 'pg'
import type { PoolClient } from 'pg'
import type {
  AuditReport, EndHoldResult, EndReservationResult, EntryKind, HoldEnd, HoldFilter, HoldOutcome, HoldRecord, HoldState, LedgerFilter, LedgerRows, LedgerStore, NewHold, NewReservation,
  OpenHoldResult, Posting, PurchaseUse, RequestState, ReservationRecord, ReservationState, ReserveResult
} from './ledger-store.ts'
import type { LedgerPool, PgLedgerOptions, Statement } from './pg-pool.ts'
import type { Logger } from '@libp2p/interface'

export class PgLedger implements LedgerStore {
  readonly engine = 'postgres' as const
  private readonly pool: pg.Pool
  private readonly connections: LedgerPool

  private constructor (connections: LedgerPool) {
    this.connections = connections
    this.pool = connections.pool
  }

  /** Connects and brings the schema up to date; ERR_LEDGER_UNAVAILABLE if the database cannot be reached */
  static async open (options: PgLedgerOptions, log: Logger): Promise<PgLedger> {
    const connections = createPgPool(options, log)
    const { pool } = connections
    try {
      let client: PoolClient
      try {
        client = await pool.connect()
      } catch (err) {
        // refused (a wrong password, no such database or user): the operator must fix the settings
        throw isUnavailable(err) ? unavailable(err) : new LedgerConnectError(`the ledger database refused the connection: ${String((err as Error).message)}`, { cause: err })
      }
      try {
        const version = await migratePg(client)
        log('ledger schema version %d', version)
      } finally {
        client.release()
      }
      return new PgLedger(connections)
    } catch (err) {
      await connections.end().catch(() => {})
      throw err
    }
  }

  async close (): Promise<void> {
    await this.connections.end()
  }

  async balance (account: string): Promise<number> {
    const rows = await query<{ balance: number }>(this.pool, 'SELECT balance FROM accounts WHERE id = $1', [account])
    return rows[0]?.balance ?? 0
  }

  async accounts (): Promise<Array<{ account: string, balance: number }>> {
    const rows = await query<{ id: string, balance: number }>(this.pool, `SELECT id, balance FROM accounts WHERE id != '${WORLD}' AND id NOT LIKE 'hold:%' AND id NOT LIKE 'reserve:%' ORDER BY id COLLATE "C"`)
    return rows.map(r => ({ account: r.id, balance: r.balance }))
  }

  async deposit (account: string, amount: number, memo?: string, now = Date.now()): Promise<number> {
    checkAmount(amount)
    return inTransaction(this.pool, async client => {
      const balances = await lockAccounts(client, [WORLD, account])
      if ((balances.get(account) ?? 0) + amount > MAX_AMOUNT) throw new AmountOutOfRangeError(`balance of ${account} would exceed ${MAX_AMOUNT}`)
      if ((balances.get(WORLD) ?? 0) - amount < -MAX_AMOUNT) throw new AmountOutOfRangeError(`deposits would exceed ${MAX_AMOUNT} in all`)
      await post(client, 'deposit', now, [[WORLD, -amount], [account, amount]], undefined, memo)
      return (balances.get(account) ?? 0) + amount
    })
  }

  async withdraw (account: string, amount: number, memo?: string, now = Date.now()): Promise<number> {
    checkAmount(amount)
    return inTransaction(this.pool, async client => {
      const balances = await lockAccounts(client, [WORLD, account])
      const balance = balances.get(account) ?? 0
      if (balance < amount) throw new InsufficientFundsError(account, balance, amount)
      await post(client, 'withdraw', now, [[account, -amount], [WORLD, amount]], undefined, memo)
      return balance - amount
    })
  }

  async openHold (hold: NewHold): Promise<OpenHoldResult> {
    const [outcome] = await this.openHolds([hold])
    if (outcome == null) throw new LedgerFaultError('no outcome for the hold')
    if ('error' in outcome) throw outcome.error
    return outcome.result
  }

  /**
   * Group commit in one statement, so one round trip: the server's `keyfair_open_holds` locks
   * every buyer of the batch (sorted), then opens each hold by `keyfair_open_hold` in the
   * batch's order (a refusal is an outcome and writes nothing). The statement is its own
   * transaction: a failure that is not a refusal (the database gone) writes none of the batch.
   */
  async openHolds (holds: NewHold[]): Promise<HoldOutcome[]> {
    if (holds.length === 0) return []
    for (const hold of holds) checkAmount(hold.amount)
    const rows = await statement<{ o_outcome: 'charged' | 'replay' | 'used' | 'funds', o_hold: string | null, o_balance: number | null }>(this.pool, OPEN_HOLDS, holdColumns(holds))
    const outcomes: HoldOutcome[] = []
    for (const [i, row] of rows.entries()) outcomes.push(await this.outcomeOf(holds[i]!, row.o_outcome, row.o_hold, row.o_balance))
    return outcomes
  }

  /** The buyer's row locked first (as a hold does), then the purchase's open reservation */
  async reserve (reservation: NewReservation): Promise<ReserveResult> {
    checkAmount(reservation.amount)
    const { device, purchase, buyer } = reservation
    return inTransaction(this.pool, async client => {
      const balances = await lockAccounts(client, [buyer])
      if ((await client.query('SELECT 1 FROM holds WHERE device = $1 AND purchase = $2', [device, purchase])).rows.length > 0) throw new AlreadyAnsweredError(purchase)
      const { rows } = await client.query<ReservationRow>("SELECT * FROM reservations WHERE device = $1 AND purchase = $2 AND state = 'open' FOR UPDATE", [device, purchase])
      if (rows[0] != null) {
        const held = reservationFromRow(rows[0])
        if (held.buyer !== buyer || held.offer !== reservation.offer || held.amount !== reservation.amount) throw new PurchaseIdUsedError(purchase)
        return { reservation: held, charged: false }
      }
      const balance = balances.get(buyer) ?? 0
      if (balance < reservation.amount) throw new InsufficientFundsError(buyer, balance, reservation.amount)
      await client.query(`INSERT INTO reservations (id, device, purchase, j, buyer, seller, amount, offer, created_at, expires_at, state)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open')`,
      [reservation.id, device, purchase, reservation.j, buyer, reservation.seller, reservation.amount, reservation.offer, reservation.createdAt, reservation.expiresAt])
      await post(client, 'hold', reservation.createdAt, [[buyer, -reservation.amount], [reserveAccount(reservation.id), reservation.amount]], reservation.id, 'reserved')
      return { reservation: { ...reservation, state: 'open' as const }, charged: true }
    })
  }

  async cancelReservation (buyer: string, purchase: string, reason: string, now = Date.now()): Promise<EndReservationResult> {
    return inTransaction(this.pool, async client => {
      await lockAccounts(client, [buyer])
      const { rows } = await client.query<ReservationRow>("SELECT * FROM reservations WHERE buyer = $1 AND purchase = $2 AND state = 'open' FOR UPDATE", [buyer, purchase])
      if (rows[0] != null) return endReservationIn(client, reservationFromRow(rows[0]), 'cancelled', reason, now)
      if ((await client.query('SELECT 1 FROM holds WHERE buyer = $1 AND purchase = $2', [buyer, purchase])).rows.length > 0) throw new AlreadyAnsweredError(purchase)
      const last = await client.query<ReservationRow>('SELECT * FROM reservations WHERE buyer = $1 AND purchase = $2 ORDER BY created_at DESC LIMIT 1', [buyer, purchase])
      return last.rows[0] == null ? { ended: false } : { reservation: reservationFromRow(last.rows[0]), ended: false }
    })
  }

  async expireReservations (now = Date.now(), limit = 1000): Promise<ReservationRecord[]> {
    const due = await query<{ id: string, buyer: string }>(this.pool, "SELECT id, buyer FROM reservations WHERE state = 'open' AND expires_at <= $1 ORDER BY expires_at LIMIT $2", [now, limit])
    const ended: ReservationRecord[] = []
    for (const { id, buyer } of due) {
      const result = await inTransaction(this.pool, async (client): Promise<EndReservationResult> => {
        await lockAccounts(client, [buyer])
        const { rows } = await client.query<ReservationRow>("SELECT * FROM reservations WHERE id = $1 AND state = 'open' FOR UPDATE", [id])
        return rows[0] == null ? { ended: false } : endReservationIn(client, reservationFromRow(rows[0]), 'expired', 'reservation expired unanswered', now)
      })
      if (result.ended && result.reservation != null) ended.push(result.reservation)
    }
    return ended
  }

  async reservations (filter: { buyer?: string, state?: ReservationState, limit?: number } = {}): Promise<ReservationRecord[]> {
    const where: string[] = []
    const args: unknown[] = []
    if (filter.buyer != null) { args.push(filter.buyer); where.push(`buyer = $${args.length}`) }
    if (filter.state != null) { args.push(filter.state); where.push(`state = $${args.length}`) }
    args.push(filter.limit ?? 100)
    const sql = `SELECT * FROM reservations ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT $${args.length}`
    return (await query<ReservationRow>(this.pool, sql, args)).map(reservationFromRow)
  }

  async endHold (id: string, end: HoldEnd, reason: string, now = Date.now()): Promise<EndHoldResult> {
    return inTransaction(this.pool, async client => {
      // the hold row first: a second ending waits here, then sees it ended
      const { rows } = await client.query<HoldRow>('SELECT * FROM holds WHERE id = $1 FOR UPDATE', [id])
      const row = rows[0]
      if (row == null) throw new UnknownHoldError(id)
      const hold = holdFromRow(row)
      if (hold.state !== 'open') return { hold, ended: false }
      const to = end === 'refund' ? hold.buyer : hold.seller
      await lockAccounts(client, [holdAccount(id), to])
      const entry = await post(client, end, now, [[holdAccount(id), -hold.amount], [to, hold.amount]], id, reason)
      const state: HoldState = end === 'refund' ? 'refunded' : 'released'
      await client.query("UPDATE holds SET state = $1, ended_at = $2, end_entry = $3, end_reason = $4 WHERE id = $5 AND state = 'open'", [state, now, entry, reason, id])
      return { hold: { ...hold, state, endedAt: now, endReason: reason }, ended: true }
    })
  }

  async expireDue (now = Date.now(), limit = 1000): Promise<HoldRecord[]> {
    const due = await query<{ id: string }>(this.pool, "SELECT id FROM holds WHERE state = 'open' AND expires_at <= $1 ORDER BY expires_at LIMIT $2", [now, limit])
    const ended: HoldRecord[] = []
    for (const { id } of due) {
      const result = await this.endHold(id, 'expire', 'expired unanswered', now)
      if (result.ended) ended.push(result.hold)
    }
    return ended
  }

  async hold (id: string): Promise<HoldRecord | undefined> {
    return this.oneHold('SELECT * FROM holds WHERE id = $1', [id])
  }

  async holdByRequest (request: string): Promise<HoldRecord | undefined> {
    return this.oneHold('SELECT * FROM holds WHERE request = $1 LIMIT 1', [request])
  }

  async answerByRequest (request: string): Promise<Uint8Array | undefined> {
    const rows = await query<{ answer: Buffer }>(this.pool, 'SELECT answer FROM holds WHERE request = $1 LIMIT 1', [request])
    return rows[0] == null ? undefined : new Uint8Array(rows[0].answer)
  }

  async requestState (request: string, buyer: string, use?: PurchaseUse): Promise<RequestState> {
    const rows = await query<{ answer: Buffer | null, balance: number | null, used: boolean }>(this.pool, REQUEST_STATE, [request, buyer, use?.device ?? null, use?.purchase ?? null])
    const state: RequestState = { balance: rows[0]?.balance ?? 0 }
    if (rows[0]?.answer != null) state.answer = new Uint8Array(rows[0].answer)
    if (use != null) state.used = rows[0]?.used === true
    return state
  }

  async purchaseUsed (device: string, purchase: string): Promise<boolean> {
    return (await query(this.pool, PURCHASE_USED, [device, purchase])).length > 0
  }

  async holdByPurchase (device: string, purchase: string): Promise<HoldRecord | undefined> {
    return this.oneHold('SELECT * FROM holds WHERE device = $1 AND purchase = $2', [device, purchase])
  }

  async holds (filter: HoldFilter = {}): Promise<HoldRecord[]> {
    const where: string[] = []
    const args: unknown[] = []
    if (filter.buyer != null) { args.push(filter.buyer); where.push(`buyer = $${args.length}`) }
    if (filter.seller != null) { args.push(filter.seller); where.push(`seller = $${args.length}`) }
    if (filter.state != null) { args.push(filter.state); where.push(`state = $${args.length}`) }
    args.push(filter.limit ?? 100)
    // created_at ties broken by id: both engines list the same holds in the same order
    const sql = `SELECT * FROM holds ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT $${args.length}`
    return (await query<HoldRow>(this.pool, sql, args)).map(holdFromRow)
  }

  async openHoldBuyers (): Promise<Map<string, number>> {
    const rows = await query<{ buyer: string, n: number }>(this.pool, "SELECT buyer, COUNT(*) AS n FROM holds WHERE state = 'open' GROUP BY buyer")
    return new Map(rows.map(r => [r.buyer, r.n]))
  }

  async postings (filter: LedgerFilter = {}): Promise<Posting[]> {
    const where: string[] = []
    const args: unknown[] = []
    if (filter.account != null) { args.push(filter.account); where.push(`p.account = $${args.length}`) }
    if (filter.kind != null) { args.push(filter.kind); where.push(`e.kind = $${args.length}`) }
    if (filter.since != null) { args.push(filter.since); where.push(`e.at >= $${args.length}`) }
    args.push(filter.limit ?? 100)
    const sql = `SELECT e.id AS entry, e.at, e.kind, e.hold_id, e.memo, p.account, p.amount FROM postings p JOIN entries e ON e.id = p.entry_id
      ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY e.id DESC, p.id LIMIT $${args.length}`
    const rows = await query<{ entry: number, at: number, kind: EntryKind, hold_id: string | null, memo: string | null, account: string, amount: number }>(this.pool, sql, args)
    return rows.map(r => {
      const posting: Posting = { entry: r.entry, at: r.at, kind: r.kind, account: r.account, amount: r.amount }
      if (r.hold_id != null) posting.hold = r.hold_id
      if (r.memo != null) posting.memo = r.memo
      return posting
    })
  }

  async audit (): Promise<AuditReport> {
    return inTransaction(this.pool, async client => auditIn(client), { isolation: 'REPEATABLE READ', readOnly: true })
  }

  /**
   * Fills this empty ledger with `rows` (ids kept) in one transaction, and commits only
   * if its audit there equals `expected` (the source's): refuses a ledger not empty.
   */
  async load (rows: LedgerRows, expected: AuditReport): Promise<AuditReport> {
    return inTransaction(this.pool, async client => {
      // no other writer while it loads: the check for emptiness stays true until commit
      await client.query('LOCK TABLE accounts, entries, postings, holds, reservations IN EXCLUSIVE MODE')
      const { rows: counts } = await client.query<{ n: number }>('SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM holds) + (SELECT COUNT(*) FROM reservations) AS n')
      if ((counts[0]?.n ?? 0) > 0) throw new LedgerNotEmptyError()
      await copyRows(client, rows)
      const report = await auditIn(client)
      if (!isDeepStrictEqual(report, expected)) throw new LedgerMoveError(`the audit after the move differs from the one before: ${JSON.stringify(report)}`)
      return report
    })
  }

  private async outcomeOf (hold: NewHold, outcome: string, stored: string | null, balance: number | null): Promise<HoldOutcome> {
    if (outcome === 'charged') return { result: { hold: { ...hold, state: 'open' }, charged: true } }
    if (outcome === 'funds') return { error: new InsufficientFundsError(hold.buyer, Number(balance ?? 0), hold.amount) }
    if (outcome === 'used' || stored == null) return { error: new PurchaseIdUsedError(hold.purchase) }
    // these very bytes were paid before: the stored hold, answer and all
    const found = await this.hold(stored)
    if (found == null) throw new LedgerFaultError(`hold ${stored} of purchase ${hold.purchase} is not there`)
    return { result: { hold: found, charged: false } }
  }

  private async oneHold (sql: string, args: unknown[]): Promise<HoldRecord | undefined> {
    const rows = await query<HoldRow>(this.pool, sql, args)
    return rows[0] == null ? undefined : holdFromRow(rows[0])
  }
}

/**
 * Locks the existing rows of these accounts in one fixed order and returns their
 * balances (an account not there yet holds 0; it is created when money reaches it).
 */
async function lockAccounts (client: PoolClient, accounts: string[]): Promise<Map<string, number>> {
  const ids = [...new Set(accounts)]
  const { rows } = await client.query<{ id: string, balance: number }>('SELECT id, balance FROM accounts WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE', [ids])
  return new Map(rows.map(r => [r.id, r.balance]))
}

// the reads every unblind request makes (Escrow.unblind), prepared once per connection
const REQUEST_STATE: Statement = {
  name: 'keyfair-request-state',
  text: 'SELECT (SELECT answer FROM holds WHERE request = $1 LIMIT 1) AS answer, (SELECT balance FROM accounts WHERE id = $2) AS balance, ' +
    'EXISTS (SELECT 1 FROM holds WHERE device = $3::text AND purchase = $4::text) AS used'
}
const PURCHASE_USED: Statement = { name: 'keyfair-purchase-used', text: 'SELECT 1 FROM holds WHERE device = $1 AND purchase = $2' }

/** The group's holds as one array per column, in the order of `keyfair_open_holds`'s parameters */
const OPEN_HOLDS: Statement = {
  name: 'keyfair-open-holds',
  text: 'SELECT o_outcome, o_hold, o_balance FROM keyfair_open_holds($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bytea[], $11::bytea[], $12::bigint[], $13::bigint[])'
}

function holdColumns (holds: NewHold[]): unknown[] {
  return [
    holds.map(h => h.id), holds.map(h => h.device), holds.map(h => h.purchase), holds.map(h => h.j),
    holds.map(h => h.buyer), holds.map(h => h.seller), holds.map(h => h.amount), holds.map(h => h.offer),
    holds.map(h => h.request), holds.map(h => Buffer.from(h.requestBytes)), holds.map(h => Buffer.from(h.answer)),
    holds.map(h => h.createdAt), holds.map(h => h.expiresAt)
  ]
}

/** Back to the buyer (whose row the caller locked): cancelled or expired, as a refund entry of the reservation */
async function endReservationIn (client: PoolClient, reservation: ReservationRecord, state: 'cancelled' | 'expired', reason: string, now: number): Promise<EndReservationResult> {
  await post(client, 'refund', now, [[reserveAccount(reservation.id), -reservation.amount], [reservation.buyer, reservation.amount]], reservation.id, reason)
  await client.query("UPDATE reservations SET state = $1, ended_at = $2, end_reason = $3 WHERE id = $4 AND state = 'open'", [state, now, reason, reservation.id])
  return { reservation: { ...reservation, state, endedAt: now, endReason: reason }, ended: true }
}

/** One balanced entry, in the caller's transaction; the accounts it touches are locked by then */
async function post (client: PoolClient, kind: EntryKind, at: number, postings: Array<[string, number]>, hold?: string, memo?: string): Promise<number> {
  if (postings.reduce((s, [, a]) => s + a, 0) !== 0) throw new LedgerFaultError('unbalanced entry')
  const accounts = postings.map(([a]) => a)
  const amounts = postings.map(([, a]) => a)
  const { rows } = await client.query<{ id: number }>('INSERT INTO entries (at, kind, hold_id, memo) VALUES ($1, $2, $3, $4) RETURNING id', [at, kind, hold ?? null, memo ?? null])
  const entry = rows[0]!.id
  await client.query('INSERT INTO postings (entry_id, account, amount) SELECT $1, a, n FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS t(a, n, i) ORDER BY i', [entry, accounts, amounts])
  // created at 0, then added to: the CHECK on balances sees only the resulting balance
  await client.query('INSERT INTO accounts (id, balance) SELECT unnest($1::text[]), 0 ON CONFLICT (id) DO NOTHING', [accounts])
  await client.query('UPDATE accounts a SET balance = a.balance + t.n FROM unnest($1::text[], $2::bigint[]) AS t(id, n) WHERE a.id = t.id', [accounts, amounts])
  return entry
}

async function auditIn (client: PoolClient): Promise<AuditReport> {
  const violations: string[] = []
  const q = async <T extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<T[]> => (await client.query<T>(sql, args)).rows
  for (const r of await q<{ entry_id: number, total: number }>('SELECT entry_id, SUM(amount)::bigint AS total FROM postings GROUP BY entry_id HAVING SUM(amount) != 0')) {
    violations.push(`entry ${r.entry_id} does not balance (sum ${r.total})`)
  }
  for (const r of await q<{ id: number }>('SELECT e.id FROM entries e LEFT JOIN postings p ON p.entry_id = e.id WHERE p.entry_id IS NULL')) {
    violations.push(`entry ${r.id} has no postings`)
  }
  for (const r of await q<{ id: string, balance: number, total: number }>(`SELECT a.id, a.balance, COALESCE(s.total, 0)::bigint AS total FROM accounts a
    LEFT JOIN (SELECT account, SUM(amount) AS total FROM postings GROUP BY account) s ON s.account = a.id WHERE a.balance != COALESCE(s.total, 0)`)) {
    violations.push(`account ${r.id} holds ${r.balance} but its postings sum to ${r.total}`)
  }
  for (const r of await q<{ account: string }>('SELECT DISTINCT account FROM postings WHERE account NOT IN (SELECT id FROM accounts)')) {
    violations.push(`postings to unknown account ${r.account}`)
  }
  for (const r of await q<{ id: string, balance: number }>(`SELECT id, balance FROM accounts WHERE id != '${WORLD}' AND balance < 0`)) {
    violations.push(`account ${r.id} is negative (${r.balance})`)
  }
  const holds = await q<{ id: string, amount: number, state: HoldState, balance: number | null, opened: number, ends: number }>(`
    SELECT h.id, h.amount, h.state, a.balance,
      (SELECT COUNT(*) FROM entries WHERE hold_id = h.id AND kind = 'hold') AS opened,
      (SELECT COUNT(*) FROM entries WHERE hold_id = h.id AND kind IN ('release', 'refund', 'expire')) AS ends
    FROM holds h LEFT JOIN accounts a ON a.id = 'hold:' || h.id`)
  const counts = { open: 0, released: 0, refunded: 0 }
  let openHeld = 0
  for (const h of holds) {
    counts[h.state]++
    const expected = h.state === 'open' ? h.amount : 0
    if ((h.balance ?? 0) !== expected) violations.push(`hold ${h.id} (${h.state}) holds ${h.balance ?? 0}, expected ${expected}`)
    if (h.opened !== 1) violations.push(`hold ${h.id} was opened ${h.opened} times`)
    if (h.ends !== (h.state === 'open' ? 0 : 1)) violations.push(`hold ${h.id} (${h.state}) has ${h.ends} endings`)
    if (h.state === 'open') openHeld += h.amount
  }
  const reserved = { open: 0, amount: 0 }
  for (const r of await q<{ id: string, amount: number, state: ReservationState, balance: number | null }>("SELECT r.id, r.amount, r.state, a.balance FROM reservations r LEFT JOIN accounts a ON a.id = 'reserve:' || r.id")) {
    const expected = r.state === 'open' ? r.amount : 0
    if ((r.balance ?? 0) !== expected) violations.push(`reservation ${r.id} (${r.state}) holds ${r.balance ?? 0}, expected ${expected}`)
    if (r.state === 'open') { reserved.open++; reserved.amount += r.amount }
  }
  const sum = async (kind: EntryKind): Promise<number> => (await q<{ total: number | null }>(`SELECT SUM(p.amount)::bigint AS total FROM postings p JOIN entries e ON e.id = p.entry_id
    WHERE e.kind = $1 AND p.account != '${WORLD}'`, [kind]))[0]?.total ?? 0
  const deposits = await sum('deposit')
  const withdrawals = -(await sum('withdraw'))
  const balances = (await q<{ total: number | null }>(`SELECT SUM(balance)::bigint AS total FROM accounts WHERE id != '${WORLD}' AND id NOT LIKE 'hold:%' AND id NOT LIKE 'reserve:%'`))[0]?.total ?? 0
  const world = (await q<{ balance: number }>('SELECT balance FROM accounts WHERE id = $1', [WORLD]))[0]?.balance ?? 0
  const held = balances + openHeld + reserved.amount
  if (held !== deposits - withdrawals) violations.push(`balances, open holds and reservations sum to ${held}, deposits − withdrawals is ${deposits - withdrawals}`)
  if (world !== -(deposits - withdrawals)) violations.push(`world account is ${world}, expected ${-(deposits - withdrawals)}`)
  const accounts = (await q<{ n: number }>(`SELECT COUNT(*) AS n FROM accounts WHERE id != '${WORLD}' AND id NOT LIKE 'hold:%' AND id NOT LIKE 'reserve:%'`))[0]?.n ?? 0
  return { ok: violations.length === 0, violations, accounts, holds: counts, deposits, withdrawals, held, reserved }
}

const COPY_CHUNK = 2000

/** Inserts every row in chunks (one statement per chunk), ids kept; the id counters then continue after them */
async function copyRows (client: PoolClient, rows: LedgerRows): Promise<void> {
  const chunks = <T>(list: T[]): T[][] => Array.from({ length: Math.ceil(list.length / COPY_CHUNK) }, (_, i) => list.slice(i * COPY_CHUNK, (i + 1) * COPY_CHUNK))
  for (const part of chunks(rows.accounts)) {
    await client.query('INSERT INTO accounts (id, balance) SELECT * FROM unnest($1::text[], $2::bigint[])', [part.map(a => a.id), part.map(a => a.balance)])
  }
  for (const part of chunks(rows.entries)) {
    await client.query('INSERT INTO entries (id, at, kind, hold_id, memo) OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])',
      [part.map(e => e.id), part.map(e => e.at), part.map(e => e.kind), part.map(e => e.hold_id), part.map(e => e.memo)])
  }
  for (const part of chunks(rows.postings)) {
    await client.query('INSERT INTO postings (entry_id, account, amount) SELECT e, a, n FROM unnest($1::bigint[], $2::text[], $3::bigint[]) WITH ORDINALITY AS t(e, a, n, i) ORDER BY i',
      [part.map(p => p.entry_id), part.map(p => p.account), part.map(p => p.amount)])
  }
  for (const h of rows.holds) {
    await client.query(`INSERT INTO holds (id, device, purchase, j, buyer, seller, amount, offer, request, request_bytes, answer, created_at, expires_at, state, ended_at, end_entry, end_reason)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
    [h.id, h.device, h.purchase, h.j, h.buyer, h.seller, h.amount, h.offer, h.request, Buffer.from(h.request_bytes), Buffer.from(h.answer), h.created_at, h.expires_at, h.state, h.ended_at, h.end_entry, h.end_reason])
  }
  for (const r of rows.reservations) {
    await client.query(`INSERT INTO reservations (id, device, purchase, j, buyer, seller, amount, offer, created_at, expires_at, state, hold_id, ended_at, end_reason)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [r.id, r.device, r.purchase, r.j, r.buyer, r.seller, r.amount, r.offer, r.created_at, r.expires_at, r.state, r.hold_id, r.ended_at, r.end_reason])
  }
  await client.query("SELECT setval(pg_get_serial_sequence('entries', 'id'), GREATEST((SELECT MAX(id) FROM entries), 1), (SELECT COUNT(*) > 0 FROM entries))")
}

