// A group of holds on PostgreSQL in a fixed number of statements, whatever its size: the
// purchase ids already taken read at once, every refusal decided in memory (under the
// buyers' row locks, with their balances as the group spends them), then the charged
// holds, their entries, postings and balances written in three statements. A purchase id
// taken by another transaction after that read (a second escrow process racing the same
// purchase) makes the group give up: the caller rolls it back and goes hold by hold.
import { EscrowError, InsufficientFundsError, PurchaseIdUsedError } from './errors.ts'
import { holdAccount } from './ledger-store.ts'
import type { HoldOutcome, HoldRecord, NewHold, OpenHoldResult } from './ledger-store.ts'
import type { PoolClient } from 'pg'

/** another transaction took one of the group's purchase ids since it looked */
export class GroupConflictError extends EscrowError {
  constructor () {
    super('a purchase id of the group was taken meanwhile', 'ERR_LEDGER_CONFLICT')
  }
}

const key = (device: string, purchase: string): string => `${device}\u0000${purchase}`

/**
 * Opens `holds` in the caller's transaction; `balances` are the buyers' balances read
 * under their row locks. `taken` turns a stored hold row into its outcome for a request.
 */
export async function openHoldGroup (client: PoolClient, holds: NewHold[], balances: Map<string, number>, taken: (device: string[], purchase: string[]) => Promise<HoldRecord[]>): Promise<HoldOutcome[]> {
  const stored = new Map((await taken(holds.map(h => h.device), holds.map(h => h.purchase))).map(h => [key(h.device, h.purchase), h]))
  const outcomes: HoldOutcome[] = []
  const charged: NewHold[] = []
  const first = new Map<string, NewHold>()
  for (const hold of holds) {
    const k = key(hold.device, hold.purchase)
    const earlier = stored.get(k) ?? first.get(k)
    if (earlier != null) {
      outcomes.push(replay(earlier, hold))
      continue
    }
    const balance = balances.get(hold.buyer) ?? 0
    if (balance < hold.amount) {
      outcomes.push({ error: new InsufficientFundsError(hold.buyer, balance, hold.amount) })
      continue
    }
    balances.set(hold.buyer, balance - hold.amount)
    first.set(k, hold)
    charged.push(hold)
    outcomes.push({ result: { hold: { ...hold, state: 'open' }, charged: true } })
  }
  if (charged.length > 0) await writeHolds(client, charged)
  return outcomes
}

/** the stored (or earlier) hold of this purchase id: its answer again, or a refusal if another request */
function replay (earlier: HoldRecord | NewHold, hold: NewHold): HoldOutcome {
  if (earlier.request !== hold.request) return { error: new PurchaseIdUsedError(hold.purchase) }
  const record: HoldRecord = 'state' in earlier ? earlier : { ...earlier, state: 'open' }
  const result: OpenHoldResult = { hold: record, charged: false }
  return { result }
}

async function writeHolds (client: PoolClient, holds: NewHold[]): Promise<void> {
  const col = <T>(f: (h: NewHold) => T): T[] => holds.map(f)
  const inserted = await client.query(`INSERT INTO holds (id, device, purchase, j, buyer, seller, amount, offer, request, request_bytes, answer, created_at, expires_at, state)
    SELECT *, 'open' FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bytea[], $11::bytea[], $12::bigint[], $13::bigint[])
    ON CONFLICT (device, purchase) DO NOTHING`,
  [col(h => h.id), col(h => h.device), col(h => h.purchase), col(h => h.j), col(h => h.buyer), col(h => h.seller), col(h => h.amount), col(h => h.offer), col(h => h.request),
    col(h => Buffer.from(h.requestBytes)), col(h => Buffer.from(h.answer)), col(h => h.createdAt), col(h => h.expiresAt)])
  if (inserted.rowCount !== holds.length) throw new GroupConflictError()
  // one entry per hold (buyer −amount, hold account +amount), the hold accounts created holding it
  await client.query(`WITH t AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS t(h, buyer, amount, at, i)),
    e AS (INSERT INTO entries (at, kind, hold_id) SELECT at, 'hold', h FROM t ORDER BY i RETURNING id, hold_id),
    p AS (INSERT INTO postings (entry_id, account, amount) SELECT e.id, x.account, x.amount FROM t JOIN e ON e.hold_id = t.h
      CROSS JOIN LATERAL (VALUES (1, t.buyer, -t.amount), (2, $5 || t.h, t.amount)) AS x(k, account, amount) ORDER BY t.i, x.k),
    b AS (INSERT INTO accounts (id, balance) SELECT DISTINCT buyer, 0 FROM t ON CONFLICT (id) DO NOTHING)
    INSERT INTO accounts (id, balance) SELECT $5 || h, amount FROM t`,
  [col(h => h.id), col(h => h.buyer), col(h => h.amount), col(h => h.createdAt), holdAccount('')])
  await client.query('UPDATE accounts a SET balance = a.balance - t.n FROM (SELECT b, SUM(n) AS n FROM unnest($1::text[], $2::bigint[]) AS u(b, n) GROUP BY b) t WHERE a.id = t.b',
    [col(h => h.buyer), col(h => h.amount)])
}
