// The escrow's double-entry ledger (docs/protocol.md, Ledger) on SQLite. Every change is one
// IMMEDIATE transaction of balanced postings; holds are accounts of their own
// (`hold:<id>`) that end exactly once. The world account `@world` is the other
// side of deposits and withdrawals, so its balance is −(deposits − withdrawals)
// and the sum over all accounts is always zero.
// One file with its schema and migrations: every statement that moves money sits beside the
// rules it keeps.
import { openDatabase, transaction } from '../store/database.ts'
import { AlreadyAnsweredError, AmountOutOfRangeError, InsufficientFundsError, LedgerFaultError, PurchaseIdUsedError, UnknownHoldError } from './errors.ts'
import type { Migration } from '../store/database.ts'
import type { AuditReport, EntryKind, EndHoldResult, EndReservationResult, HoldEnd, HoldOutcome, HoldFilter, HoldRecord, HoldState, LedgerFilter, LedgerRows, NewHold, NewReservation, OpenHoldResult, Posting, ReservationRecord, ReservationState, ReserveResult } from './ledger-store.ts'
import type { DatabaseSync, StatementSync } from 'node:sqlite'

import { MAX_AMOUNT, WORLD, checkAmount, holdAccount, reserveAccount } from './ledger-store.ts'
import { holdFromRow, reservationFromRow } from './ledger-rows.ts'
import type { HoldRow, ReservationRow } from './ledger-rows.ts'
export { MAX_AMOUNT, WORLD, holdAccount }
export type { AuditReport, EntryKind, EndHoldResult, HoldEnd, HoldOutcome, HoldRecord, HoldState, LedgerFilter, NewHold, OpenHoldResult, Posting } from './ledger-store.ts'

export const ledgerMigrations: Migration[] = [{
  version: 1,
  up: `
    CREATE TABLE accounts (
      id TEXT PRIMARY KEY,
      balance INTEGER NOT NULL,
      CHECK (id = '${WORLD}' OR id LIKE 'hold:%' OR balance >= 0)
    );
    CREATE TABLE entries (
      id INTEGER PRIMARY KEY,
      at INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('deposit', 'withdraw', 'hold', 'release', 'refund', 'expire')),
      hold_id TEXT,
      memo TEXT
    );
    CREATE TABLE postings (
      entry_id INTEGER NOT NULL REFERENCES entries (id),
      account TEXT NOT NULL,
      amount INTEGER NOT NULL
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
      amount INTEGER NOT NULL CHECK (amount >= 0),
      offer TEXT NOT NULL,
      request TEXT NOT NULL,
      request_bytes BLOB NOT NULL,
      answer BLOB NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('open', 'released', 'refunded')),
      ended_at INTEGER,
      end_entry INTEGER REFERENCES entries (id),
      end_reason TEXT,
      UNIQUE (device, purchase)
    );
    CREATE INDEX holds_open ON holds (state, expires_at);
    CREATE INDEX holds_buyer ON holds (buyer);
  `
}, {
  version: 2,
  // a paid request is found by its CID alone, before any certificate check
  up: 'CREATE INDEX holds_request ON holds (request)'
}, {
  version: 3,
  // reservations: the price held before anything is answered; one open per (device, purchase)
  up: `
    CREATE TABLE reservations (
      id TEXT PRIMARY KEY,
      device TEXT NOT NULL,
      purchase TEXT NOT NULL,
      j INTEGER NOT NULL,
      buyer TEXT NOT NULL,
      seller TEXT NOT NULL,
      amount INTEGER NOT NULL CHECK (amount >= 0),
      offer TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('open', 'answered', 'cancelled', 'expired')),
      hold_id TEXT,
      ended_at INTEGER,
      end_reason TEXT
    );
    CREATE UNIQUE INDEX reservations_open ON reservations (device, purchase) WHERE state = 'open';
    CREATE INDEX reservations_due ON reservations (state, expires_at);
    CREATE INDEX reservations_buyer ON reservations (buyer, purchase);
  `
}, {
  version: 4,
  // a seller's sales are listed by the seller's peer id
  up: 'CREATE INDEX holds_seller ON holds (seller)'
}]

export class Ledger {
  private readonly db: DatabaseSync
  /** prepared once per SQL text: preparing costs more than most of these statements run */
  private readonly statements = new Map<string, StatementSync>()

  constructor (db: DatabaseSync) {
    this.db = db
  }

  private stmt (sql: string): StatementSync {
    let statement = this.statements.get(sql)
    if (statement === undefined) {
      statement = this.db.prepare(sql)
      this.statements.set(sql, statement)
    }
    return statement
  }

  static open (file: string): Ledger {
    return new Ledger(openDatabase(file, ledgerMigrations))
  }

  close (): void {
    this.statements.clear()
    this.db.close()
  }

  balance (account: string): number {
    const row = this.stmt('SELECT balance FROM accounts WHERE id = ?').get(account) as { balance: number } | undefined
    return row?.balance ?? 0
  }

  /** Every customer account and its balance */
  accounts (): Array<{ account: string, balance: number }> {
    return (this.db.prepare(`SELECT id, balance FROM accounts WHERE id != '${WORLD}' AND id NOT LIKE 'hold:%' AND id NOT LIKE 'reserve:%' ORDER BY id`).all() as Array<{ id: string, balance: number }>)
      .map(r => ({ account: r.id, balance: r.balance }))
  }

  deposit (account: string, amount: number, memo?: string, now = Date.now()): number {
    checkAmount(amount)
    return transaction(this.db, () => {
      if (this.balance(account) + amount > MAX_AMOUNT) throw new AmountOutOfRangeError(`balance of ${account} would exceed ${MAX_AMOUNT}`)
      if (this.balance(WORLD) - amount < -MAX_AMOUNT) throw new AmountOutOfRangeError(`deposits would exceed ${MAX_AMOUNT} in all`)
      this.post('deposit', now, [[WORLD, -amount], [account, amount]], undefined, memo)
      return this.balance(account)
    })
  }

  withdraw (account: string, amount: number, memo?: string, now = Date.now()): number {
    checkAmount(amount)
    return transaction(this.db, () => {
      const balance = this.balance(account)
      if (balance < amount) throw new InsufficientFundsError(account, balance, amount)
      this.post('withdraw', now, [[account, -amount], [WORLD, amount]], undefined, memo)
      return this.balance(account)
    })
  }

  /**
   * Records a paid request and moves its price from the buyer into a new hold,
   * in one transaction. The same request under its purchase id returns the stored
   * hold (and answer) without charging again; another request under it is refused.
   */
  openHold (hold: NewHold): OpenHoldResult {
    const [outcome] = this.openHolds([hold])
    if (outcome == null) throw new LedgerFaultError('no outcome for the hold')
    if ('error' in outcome) throw outcome.error
    return outcome.result
  }

  /**
   * Group commit: opens each hold as `openHold` would, in order, all in ONE
   * transaction (one fsync), each under its own savepoint, so a refused hold
   * (insufficient funds, purchase id used) writes nothing and the others still
   * commit. Returns only after the commit: every result is durable. If the
   * commit itself fails, it throws and none of them is written.
   */
  openHolds (holds: NewHold[]): HoldOutcome[] {
    if (holds.length === 0) return []
    return transaction(this.db, () => holds.map(hold => {
      this.db.exec('SAVEPOINT hold')
      try {
        const result = this.openHoldInTransaction(hold)
        this.db.exec('RELEASE hold')
        return { result }
      } catch (error) {
        // undo this hold only (ROLLBACK TO keeps the savepoint open: release it too)
        this.db.exec('ROLLBACK TO hold')
        this.db.exec('RELEASE hold')
        return { error }
      }
    }))
  }

  /** Moves the price from the buyer into a reservation for (device, purchase), in one transaction */
  reserve (reservation: NewReservation): ReserveResult {
    checkAmount(reservation.amount)
    return transaction(this.db, () => {
      const { device, purchase, buyer } = reservation
      if (this.stmt('SELECT 1 AS used FROM holds WHERE device = ? AND purchase = ?').get(device, purchase) != null) throw new AlreadyAnsweredError(purchase)
      const open = this.stmt("SELECT * FROM reservations WHERE device = ? AND purchase = ? AND state = 'open'").get(device, purchase)
      if (open != null) {
        const held = reservationOf(open)
        if (held.buyer !== buyer || held.offer !== reservation.offer || held.amount !== reservation.amount) throw new PurchaseIdUsedError(purchase)
        return { reservation: held, charged: false }
      }
      const balance = this.balance(buyer)
      if (balance < reservation.amount) throw new InsufficientFundsError(buyer, balance, reservation.amount)
      this.stmt(`INSERT INTO reservations (id, device, purchase, j, buyer, seller, amount, offer, created_at, expires_at, state)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')`)
        .run(reservation.id, device, purchase, reservation.j, buyer, reservation.seller, reservation.amount, reservation.offer, reservation.createdAt, reservation.expiresAt)
      this.post('hold', reservation.createdAt, [[buyer, -reservation.amount], [reserveAccount(reservation.id), reservation.amount]], reservation.id, 'reserved')
      return { reservation: { ...reservation, state: 'open' as const }, charged: true }
    })
  }

  /** Gives the buyer's open reservation of `purchase` back to the buyer, unless it was answered */
  cancelReservation (buyer: string, purchase: string, reason: string, now = Date.now()): EndReservationResult {
    return transaction(this.db, () => {
      const open = this.stmt("SELECT * FROM reservations WHERE buyer = ? AND purchase = ? AND state = 'open'").get(buyer, purchase)
      if (open != null) return this.endReservationInTransaction(reservationOf(open), 'cancelled', reason, now)
      if (this.stmt('SELECT 1 AS used FROM holds WHERE buyer = ? AND purchase = ?').get(buyer, purchase) != null) throw new AlreadyAnsweredError(purchase)
      const last = this.stmt('SELECT * FROM reservations WHERE buyer = ? AND purchase = ? ORDER BY created_at DESC LIMIT 1').get(buyer, purchase)
      return last == null ? { ended: false } : { reservation: reservationOf(last), ended: false }
    })
  }

  /** Every open reservation past its time back to its buyer, each in its own transaction */
  expireReservations (now = Date.now(), limit = 1000): ReservationRecord[] {
    const due = this.stmt("SELECT id FROM reservations WHERE state = 'open' AND expires_at <= ? ORDER BY expires_at LIMIT ?").all(now, limit) as Array<{ id: string }>
    const ended: ReservationRecord[] = []
    for (const { id } of due) {
      const result = transaction(this.db, () => {
        const row = this.stmt("SELECT * FROM reservations WHERE id = ? AND state = 'open'").get(id)
        return row == null ? { ended: false } : this.endReservationInTransaction(reservationOf(row), 'expired', 'reservation expired unanswered', now)
      })
      if (result.ended && result.reservation != null) ended.push(result.reservation)
    }
    return ended
  }

  reservations (filter: { buyer?: string, state?: ReservationState, limit?: number } = {}): ReservationRecord[] {
    const where: string[] = []
    const args: Array<string | number> = []
    if (filter.buyer != null) { where.push('buyer = ?'); args.push(filter.buyer) }
    if (filter.state != null) { where.push('state = ?'); args.push(filter.state) }
    const sql = `SELECT * FROM reservations ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC LIMIT ?`
    return this.db.prepare(sql).all(...args, filter.limit ?? 100).map(reservationOf)
  }

  /** Ends an open hold once: release/expire pay the seller, refund pays the buyer */
  endHold (id: string, end: HoldEnd, reason: string, now = Date.now()): EndHoldResult {
    return transaction(this.db, () => this.endHoldInTransaction(id, end, reason, now))
  }

  /** Ends every open hold whose time has passed, each in its own transaction */
  expireDue (now = Date.now(), limit = 1000): HoldRecord[] {
    const due = this.stmt("SELECT id FROM holds WHERE state = 'open' AND expires_at <= ? ORDER BY expires_at LIMIT ?").all(now, limit) as Array<{ id: string }>
    const ended: HoldRecord[] = []
    for (const { id } of due) {
      const result = this.endHold(id, 'expire', 'expired unanswered', now)
      if (result.ended) ended.push(result.hold)
    }
    return ended
  }

  hold (id: string): HoldRecord | undefined {
    const row = this.stmt('SELECT * FROM holds WHERE id = ?').get(id)
    return row == null ? undefined : holdOf(row)
  }

  /** The hold a request (by its CID) was charged for */
  holdByRequest (request: string): HoldRecord | undefined {
    const row = this.stmt('SELECT * FROM holds WHERE request = ?').get(request)
    return row == null ? undefined : holdOf(row)
  }

  /** The stored answer to a request (by its CID), if it was charged: the replay path reads only this */
  answerByRequest (request: string): Uint8Array | undefined {
    const row = this.stmt('SELECT answer FROM holds WHERE request = ? LIMIT 1').get(request) as { answer: Uint8Array } | undefined
    return row == null ? undefined : new Uint8Array(row.answer)
  }

  /** Whether a device already used this purchase id */
  purchaseUsed (device: string, purchase: string): boolean {
    return this.stmt('SELECT 1 AS used FROM holds WHERE device = ? AND purchase = ?').get(device, purchase) != null
  }

  holdByPurchase (device: string, purchase: string): HoldRecord | undefined {
    const row = this.stmt('SELECT * FROM holds WHERE device = ? AND purchase = ?').get(device, purchase)
    return row == null ? undefined : holdOf(row)
  }

  holds (filter: HoldFilter = {}): HoldRecord[] {
    const where: string[] = []
    const args: Array<string | number> = []
    if (filter.buyer != null) { where.push('buyer = ?'); args.push(filter.buyer) }
    if (filter.seller != null) { where.push('seller = ?'); args.push(filter.seller) }
    if (filter.state != null) { where.push('state = ?'); args.push(filter.state) }
    const sql = `SELECT * FROM holds ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC LIMIT ?`
    return this.db.prepare(sql).all(...args, filter.limit ?? 100).map(holdOf)
  }

  /** Open holds per buyer */
  openHoldBuyers (): Map<string, number> {
    const rows = this.stmt("SELECT buyer, COUNT(*) AS n FROM holds WHERE state = 'open' GROUP BY buyer").all() as Array<{ buyer: string, n: number }>
    return new Map(rows.map(r => [r.buyer, r.n]))
  }

  /** Every row, for moving the ledger to another engine (read in one transaction) */
  dump (): LedgerRows {
    return transaction(this.db, () => ({
      accounts: this.db.prepare('SELECT id, balance FROM accounts ORDER BY id').all() as LedgerRows['accounts'],
      entries: this.db.prepare('SELECT id, at, kind, hold_id, memo FROM entries ORDER BY id').all() as LedgerRows['entries'],
      postings: this.db.prepare('SELECT entry_id, account, amount FROM postings ORDER BY rowid').all() as LedgerRows['postings'],
      holds: (this.db.prepare('SELECT id, device, purchase, j, buyer, seller, amount, offer, request, request_bytes, answer, created_at, expires_at, state, ended_at, end_entry, end_reason FROM holds ORDER BY created_at, id')
        .all() as LedgerRows['holds']).map(h => ({ ...h, request_bytes: new Uint8Array(h.request_bytes), answer: new Uint8Array(h.answer) })),
      reservations: this.db.prepare('SELECT id, device, purchase, j, buyer, seller, amount, offer, created_at, expires_at, state, hold_id, ended_at, end_reason FROM reservations ORDER BY created_at, id')
        .all() as LedgerRows['reservations']
    }))
  }

  /** Postings, newest first, filterable by account, kind and time */
  postings (filter: LedgerFilter = {}): Posting[] {
    const where: string[] = []
    const args: Array<string | number> = []
    if (filter.account != null) { where.push('p.account = ?'); args.push(filter.account) }
    if (filter.kind != null) { where.push('e.kind = ?'); args.push(filter.kind) }
    if (filter.since != null) { where.push('e.at >= ?'); args.push(filter.since) }
    const sql = `SELECT e.id AS entry, e.at, e.kind, e.hold_id, e.memo, p.account, p.amount FROM postings p JOIN entries e ON e.id = p.entry_id
      ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY e.id DESC, p.rowid LIMIT ?`
    return this.db.prepare(sql).all(...args, filter.limit ?? 100).map((r: any) => {
      const posting: Posting = { entry: r.entry, at: r.at, kind: r.kind, account: r.account, amount: r.amount }
      if (r.hold_id != null) posting.hold = r.hold_id
      if (r.memo != null) posting.memo = r.memo
      return posting
    })
  }

  /**
   * Checks the invariants: every entry balances, every balance is the sum of its
   * postings, no account is negative, every hold is open or ended exactly once,
   * and money is conserved (balances + open holds = deposits − withdrawals).
   */
  audit (): AuditReport {
    const violations: string[] = []
    const q = <T>(sql: string, ...args: Array<string | number>): T[] => this.db.prepare(sql).all(...args) as T[]
    for (const r of q<{ entry_id: number, total: number }>('SELECT entry_id, SUM(amount) AS total FROM postings GROUP BY entry_id HAVING total != 0')) {
      violations.push(`entry ${r.entry_id} does not balance (sum ${r.total})`)
    }
    for (const r of q<{ id: number }>('SELECT e.id FROM entries e LEFT JOIN postings p ON p.entry_id = e.id WHERE p.entry_id IS NULL')) {
      violations.push(`entry ${r.id} has no postings`)
    }
    for (const r of q<{ id: string, balance: number, total: number }>(`SELECT a.id, a.balance, COALESCE((SELECT SUM(amount) FROM postings WHERE account = a.id), 0) AS total
      FROM accounts a WHERE a.balance != COALESCE((SELECT SUM(amount) FROM postings WHERE account = a.id), 0)`)) {
      violations.push(`account ${r.id} holds ${r.balance} but its postings sum to ${r.total}`)
    }
    for (const r of q<{ account: string }>('SELECT DISTINCT account FROM postings WHERE account NOT IN (SELECT id FROM accounts)')) {
      violations.push(`postings to unknown account ${r.account}`)
    }
    for (const r of q<{ id: string, balance: number }>(`SELECT id, balance FROM accounts WHERE id != '${WORLD}' AND balance < 0`)) {
      violations.push(`account ${r.id} is negative (${r.balance})`)
    }
    const holds = q<{ id: string, amount: number, state: string, balance: number | null, opened: number, ends: number }>(`
      SELECT h.id, h.amount, h.state,
        (SELECT balance FROM accounts WHERE id = 'hold:' || h.id) AS balance,
        (SELECT COUNT(*) FROM entries WHERE hold_id = h.id AND kind = 'hold') AS opened,
        (SELECT COUNT(*) FROM entries WHERE hold_id = h.id AND kind IN ('release', 'refund', 'expire')) AS ends
      FROM holds h`)
    const counts = { open: 0, released: 0, refunded: 0 }
    let openHeld = 0
    for (const h of holds) {
      counts[h.state as HoldState]++
      const expected = h.state === 'open' ? h.amount : 0
      if ((h.balance ?? 0) !== expected) violations.push(`hold ${h.id} (${h.state}) holds ${h.balance ?? 0}, expected ${expected}`)
      if (h.opened !== 1) violations.push(`hold ${h.id} was opened ${h.opened} times`)
      if (h.ends !== (h.state === 'open' ? 0 : 1)) violations.push(`hold ${h.id} (${h.state}) has ${h.ends} endings`)
      if (h.state === 'open') openHeld += h.amount
    }
    const reserved = { open: 0, amount: 0 }
    for (const r of q<{ id: string, amount: number, state: string, balance: number | null }>("SELECT r.id, r.amount, r.state, (SELECT balance FROM accounts WHERE id = 'reserve:' || r.id) AS balance FROM reservations r")) {
      const expected = r.state === 'open' ? r.amount : 0
      if ((r.balance ?? 0) !== expected) violations.push(`reservation ${r.id} (${r.state}) holds ${r.balance ?? 0}, expected ${expected}`)
      if (r.state === 'open') { reserved.open++; reserved.amount += r.amount }
    }
    const sum = (kind: EntryKind): number => (q<{ total: number | null }>(`SELECT SUM(p.amount) AS total FROM postings p JOIN entries e ON e.id = p.entry_id
      WHERE e.kind = ? AND p.account != '${WORLD}'`, kind)[0]?.total ?? 0)
    const deposits = sum('deposit')
    const withdrawals = -sum('withdraw')
    const balances = q<{ total: number | null }>(`SELECT SUM(balance) AS total FROM accounts WHERE id != '${WORLD}' AND id NOT LIKE 'hold:%' AND id NOT LIKE 'reserve:%'`)[0]?.total ?? 0
    const held = balances + openHeld + reserved.amount
    if (held !== deposits - withdrawals) violations.push(`balances, open holds and reservations sum to ${held}, deposits − withdrawals is ${deposits - withdrawals}`)
    if (this.balance(WORLD) !== -(deposits - withdrawals)) violations.push(`world account is ${this.balance(WORLD)}, expected ${-(deposits - withdrawals)}`)
    const accounts = q<{ n: number }>(`SELECT COUNT(*) AS n FROM accounts WHERE id != '${WORLD}' AND id NOT LIKE 'hold:%' AND id NOT LIKE 'reserve:%'`)[0]?.n ?? 0
    return { ok: violations.length === 0, violations, accounts, holds: counts, deposits, withdrawals, held, reserved }
  }

  private openHoldInTransaction (hold: NewHold): OpenHoldResult {
    checkAmount(hold.amount)
    const used = this.stmt('SELECT request FROM holds WHERE device = ? AND purchase = ?').get(hold.device, hold.purchase) as { request: string } | undefined
    if (used != null) {
      if (used.request !== hold.request) throw new PurchaseIdUsedError(hold.purchase)
      return { hold: this.holdByPurchase(hold.device, hold.purchase)!, charged: false }
    }
    const reserved = this.stmt("SELECT * FROM reservations WHERE device = ? AND purchase = ? AND state = 'open'").get(hold.device, hold.purchase)
    const reservation = reserved == null ? undefined : reservationOf(reserved)
    if (reservation != null && (reservation.buyer !== hold.buyer || reservation.offer !== hold.offer || reservation.amount !== hold.amount)) throw new PurchaseIdUsedError(hold.purchase)
    const balance = this.balance(hold.buyer)
    if (reservation == null && balance < hold.amount) throw new InsufficientFundsError(hold.buyer, balance, hold.amount)
    this.stmt(`INSERT INTO holds (id, device, purchase, j, buyer, seller, amount, offer, request, request_bytes, answer, created_at, expires_at, state)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')`)
      .run(hold.id, hold.device, hold.purchase, hold.j, hold.buyer, hold.seller, hold.amount, hold.offer, hold.request, hold.requestBytes, hold.answer, hold.createdAt, hold.expiresAt)
    if (reservation != null) {
      // the reserved price becomes the hold: the buyer was charged once, at the reservation
      this.post('hold', hold.createdAt, [[reserveAccount(reservation.id), -hold.amount], [holdAccount(hold.id), hold.amount]], hold.id, `reservation ${reservation.id}`)
      this.stmt("UPDATE reservations SET state = 'answered', hold_id = ?, ended_at = ?, end_reason = 'answered' WHERE id = ?").run(hold.id, hold.createdAt, reservation.id)
    } else {
      this.post('hold', hold.createdAt, [[hold.buyer, -hold.amount], [holdAccount(hold.id), hold.amount]], hold.id)
    }
    return { hold: { ...hold, state: 'open' }, charged: true }
  }

  private endHoldInTransaction (id: string, end: HoldEnd, reason: string, now: number): EndHoldResult {
    const hold = this.hold(id)
    if (hold == null) throw new UnknownHoldError(id)
    if (hold.state !== 'open') return { hold, ended: false }
    const to = end === 'refund' ? hold.buyer : hold.seller
    const entry = this.post(end, now, [[holdAccount(id), -hold.amount], [to, hold.amount]], id, reason)
    const state: HoldState = end === 'refund' ? 'refunded' : 'released'
    const changed = this.stmt("UPDATE holds SET state = ?, ended_at = ?, end_entry = ?, end_reason = ? WHERE id = ? AND state = 'open'")
      .run(state, now, entry, reason, id)
    // the row was open when read inside this same transaction
    if (changed.changes !== 1) throw new LedgerFaultError(`hold ${id} changed under its transaction`)
    return { hold: { ...hold, state, endedAt: now, endReason: reason }, ended: true }
  }

  /** Back to the buyer: cancelled or expired, as a refund entry of the reservation */
  private endReservationInTransaction (reservation: ReservationRecord, state: 'cancelled' | 'expired', reason: string, now: number): EndReservationResult {
    this.post('refund', now, [[reserveAccount(reservation.id), -reservation.amount], [reservation.buyer, reservation.amount]], reservation.id, reason)
    const changed = this.stmt("UPDATE reservations SET state = ?, ended_at = ?, end_reason = ? WHERE id = ? AND state = 'open'").run(state, now, reason, reservation.id)
    if (changed.changes !== 1) throw new LedgerFaultError(`reservation ${reservation.id} changed under its transaction`)
    return { reservation: { ...reservation, state, endedAt: now, endReason: reason }, ended: true }
  }

  /** One balanced entry; call inside a transaction */
  private post (kind: EntryKind, at: number, postings: Array<[string, number]>, hold?: string, memo?: string): number {
    if (postings.reduce((s, [, a]) => s + a, 0) !== 0) throw new LedgerFaultError('unbalanced entry')
    const entry = Number(this.stmt('INSERT INTO entries (at, kind, hold_id, memo) VALUES (?, ?, ?, ?)').run(at, kind, hold ?? null, memo ?? null).lastInsertRowid)
    const insert = this.stmt('INSERT INTO postings (entry_id, account, amount) VALUES (?, ?, ?)')
    // create at 0, then add: the CHECK on balances sees only the resulting balance
    const create = this.stmt('INSERT OR IGNORE INTO accounts (id, balance) VALUES (?, 0)')
    const add = this.stmt('UPDATE accounts SET balance = balance + ? WHERE id = ?')
    for (const [account, amount] of postings) {
      insert.run(entry, account, amount)
      create.run(account)
      add.run(amount, account)
    }
    return entry
  }
}

// node:sqlite answers untyped rows; these columns are those of the schema above
function holdOf (row: unknown): HoldRecord {
  return holdFromRow(row as HoldRow)
}

function reservationOf (row: unknown): ReservationRecord {
  return reservationFromRow(row as ReservationRow)
}
