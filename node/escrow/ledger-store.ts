// The escrow's ledger as the escrow sees it (docs/protocol.md, Ledger), whatever stores it: SQLite in the
// repo (ledger.ts, the default) or a PostgreSQL database (pg-ledger.ts). Every method
// returns a promise and is one transaction: it commits whole or writes nothing. Both
// engines keep the same double-entry rules: every entry's postings sum to zero, holds are
// accounts of their own (`hold:<id>`) that end exactly once, no customer account goes
// negative, and a purchase id names one request per device.
import { AmountOutOfRangeError } from './errors.ts'

export const WORLD = '@world'
/** Largest balance or amount: integers stay exact in JS numbers, SQLite and BIGINT */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER

export type EntryKind = 'deposit' | 'withdraw' | 'hold' | 'release' | 'refund' | 'expire'
export const ENTRY_KINDS: readonly EntryKind[] = ['deposit', 'withdraw', 'hold', 'release', 'refund', 'expire']
export type HoldState = 'open' | 'released' | 'refunded'
/** How a hold ends: to the seller (receipt, refused dispute), to the buyer (valid dispute, fraud proof), or by expiry */
export type HoldEnd = 'release' | 'refund' | 'expire'

export interface HoldRecord {
  id: string
  device: string
  purchase: string
  j: number
  buyer: string
  seller: string
  amount: number
  offer: string
  /** CID of the signed request */
  request: string
  /** the signed request as received: a dispute is judged against its offer */
  requestBytes: Uint8Array
  /** the signed answer as sent: a retried request gets exactly it */
  answer: Uint8Array
  createdAt: number
  expiresAt: number
  state: HoldState
  endedAt?: number
  endReason?: string
}

export type NewHold = Omit<HoldRecord, 'state' | 'endedAt' | 'endReason'>

export interface Posting {
  entry: number
  at: number
  kind: EntryKind
  account: string
  amount: number
  hold?: string
  memo?: string
}

export interface OpenHoldResult {
  hold: HoldRecord
  /** false when the same request was already paid: its stored answer, no new charge */
  charged: boolean
}

/** One hold of a group commit: opened (or replayed), or refused with nothing written */
export type HoldOutcome = { result: OpenHoldResult } | { error: unknown }

/**
 * A reservation: the price moved from the buyer into an account of its own
 * (`reserve:<id>`) before the escrow answers anything, bound to (device, purchase id,
 * offer, amount). The device's request under that purchase turns it into the answered
 * hold (no second charge); cancelled (while unanswered) or past its time, it goes back
 * to the buyer. answered: it became hold `hold`.
 */
export type ReservationState = 'open' | 'answered' | 'cancelled' | 'expired'

export interface ReservationRecord {
  id: string
  device: string
  purchase: string
  j: number
  buyer: string
  seller: string
  amount: number
  offer: string
  createdAt: number
  expiresAt: number
  state: ReservationState
  /** the hold it became, once answered */
  hold?: string
  endedAt?: number
  endReason?: string
}

export type NewReservation = Omit<ReservationRecord, 'state' | 'hold' | 'endedAt' | 'endReason'>

export interface ReserveResult {
  reservation: ReservationRecord
  /** false when this reservation was already open (the same one asked again): nothing moved */
  charged: boolean
}

export interface EndReservationResult {
  /** the buyer's reservation of that purchase, if there is one */
  reservation?: ReservationRecord
  /** false when there was none open (nothing written) */
  ended: boolean
}

export interface EndHoldResult {
  hold: HoldRecord
  /** false when the hold had already ended (nothing written) */
  ended: boolean
}

export interface AuditReport {
  ok: boolean
  violations: string[]
  accounts: number
  holds: { open: number, released: number, refunded: number }
  deposits: number
  withdrawals: number
  /** sum of all non-world balances and open holds: must equal deposits − withdrawals */
  held: number
  /** open reservations (money out of the buyer's balance, not yet answered) and their sum */
  reserved: { open: number, amount: number }
}

export interface LedgerFilter {
  account?: string
  kind?: EntryKind
  since?: number
  limit?: number
}


export type LedgerEngine = 'sqlite' | 'postgres'

/** Every row of a ledger, as stored: what moves it from one engine to another */
export interface LedgerRows {
  accounts: Array<{ id: string, balance: number }>
  entries: Array<{ id: number, at: number, kind: EntryKind, hold_id: string | null, memo: string | null }>
  /** in the order they were written */
  postings: Array<{ entry_id: number, account: string, amount: number }>
  holds: Array<{
    id: string, device: string, purchase: string, j: number, buyer: string, seller: string, amount: number, offer: string, request: string,
    request_bytes: Uint8Array, answer: Uint8Array, created_at: number, expires_at: number, state: HoldState, ended_at: number | null, end_entry: number | null, end_reason: string | null
  }>
  reservations: Array<{
    id: string, device: string, purchase: string, j: number, buyer: string, seller: string, amount: number, offer: string,
    created_at: number, expires_at: number, state: ReservationState, hold_id: string | null, ended_at: number | null, end_reason: string | null
  }>
}

/** Which holds to list, newest first: a buyer's purchases, a seller's sales, by state */
export interface HoldFilter {
  buyer?: string
  seller?: string
  state?: HoldState
  limit?: number
}

export interface LedgerStore {
  readonly engine: LedgerEngine
  balance: (account: string) => Promise<number>
  /** Every customer account and its balance */
  accounts: () => Promise<Array<{ account: string, balance: number }>>
  deposit: (account: string, amount: number, memo?: string, now?: number) => Promise<number>
  withdraw: (account: string, amount: number, memo?: string, now?: number) => Promise<number>
  /**
   * Records a paid request and moves its price from the buyer into a new hold, or from
   * the open reservation of its (device, purchase) when there is one with the same
   * buyer, offer and amount (the buyer is not charged again). The same request under its
   * purchase id returns the stored hold (and answer) without charging again; another
   * request under it is refused.
   */
  openHold: (hold: NewHold) => Promise<OpenHoldResult>
  /**
   * Group commit: opens each hold as `openHold` would, in order, all in ONE
   * transaction; a refused hold writes nothing and the others still commit. Resolves
   * only after the commit; if the commit fails it rejects and none is written.
   */
  openHolds: (holds: NewHold[]) => Promise<HoldOutcome[]>
  /**
   * Moves the price from the buyer into a reservation for (device, purchase). The same
   * reservation asked again (same buyer, offer and amount, still open) is returned
   * uncharged; a purchase already answered here is refused with ERR_ALREADY_ANSWERED,
   * another open reservation under the purchase id with ERR_PURCHASE_ID_USED.
   */
  reserve: (reservation: NewReservation) => Promise<ReserveResult>
  /**
   * Gives the buyer's open reservation of `purchase` back to the buyer. Nothing open: not
   * ended; already answered: ERR_ALREADY_ANSWERED (an answered payment is never undone here)
   */
  cancelReservation: (buyer: string, purchase: string, reason: string, now?: number) => Promise<EndReservationResult>
  /** Gives every open reservation whose time has passed back to its buyer, each in its own transaction */
  expireReservations: (now?: number, limit?: number) => Promise<ReservationRecord[]>
  reservations: (filter?: { buyer?: string, state?: ReservationState, limit?: number }) => Promise<ReservationRecord[]>
  /** Ends an open hold once: release/expire pay the seller, refund pays the buyer */
  endHold: (id: string, end: HoldEnd, reason: string, now?: number) => Promise<EndHoldResult>
  /** Ends every open hold whose time has passed, each in its own transaction */
  expireDue: (now?: number, limit?: number) => Promise<HoldRecord[]>
  hold: (id: string) => Promise<HoldRecord | undefined>
  /** The hold a request (by its CID) was charged for */
  holdByRequest: (request: string) => Promise<HoldRecord | undefined>
  /** The stored answer to a request (by its CID), if it was charged */
  answerByRequest: (request: string) => Promise<Uint8Array | undefined>
  /**
   * The stored answer to `request` (if paid before), `buyer`'s balance and, when `use` names
   * a device and purchase id, whether that device used the id: one read
   */
  requestState: (request: string, buyer: string, use?: PurchaseUse) => Promise<RequestState>
  /** Whether a device already used this purchase id */
  purchaseUsed: (device: string, purchase: string) => Promise<boolean>
  holdByPurchase: (device: string, purchase: string) => Promise<HoldRecord | undefined>
  holds: (filter?: HoldFilter) => Promise<HoldRecord[]>
  /** Open holds per buyer */
  openHoldBuyers: () => Promise<Map<string, number>>
  /** Postings, newest first, filterable by account, kind and time */
  postings: (filter?: LedgerFilter) => Promise<Posting[]>
  /**
   * Checks the invariants on one consistent view: every entry balances, every balance
   * is the sum of its postings, no account is negative, every hold is open or ended
   * exactly once, and money is conserved (balances + open holds = deposits − withdrawals).
   */
  audit: () => Promise<AuditReport>
  close: () => Promise<void>
}

export function holdAccount (id: string): string {
  return `hold:${id}`
}

export function reserveAccount (id: string): string {
  return `reserve:${id}`
}

export function checkAmount (amount: number): void {
  if (!Number.isSafeInteger(amount) || amount < 0) throw new AmountOutOfRangeError()
}

/** A device's purchase id, as a hold records it */
export interface PurchaseUse {
  device: string
  purchase: string
}

export interface RequestState {
  answer?: Uint8Array
  balance: number
  /** whether the device in `use` already used the purchase id (present only when asked) */
  used?: boolean
}
