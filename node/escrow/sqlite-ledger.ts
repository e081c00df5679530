// The SQLite engine of the ledger store: the repo's `escrow/ledger.db` (ledger.ts). SQLite
// runs in this thread, so each call is one synchronous IMMEDIATE transaction, wrapped in a
// promise; the group commit gets one transaction (one fsync) per batch as before.
import { Ledger } from './ledger.ts'
import type { AuditReport, EndHoldResult, EndReservationResult, HoldEnd, HoldOutcome, HoldFilter, HoldRecord, HoldState, LedgerFilter, LedgerStore, NewHold, NewReservation, OpenHoldResult, Posting, PurchaseUse, RequestState, ReservationRecord, ReservationState, ReserveResult } from './ledger-store.ts'

export class SqliteLedger implements LedgerStore {
  readonly engine = 'sqlite' as const
  /** the synchronous ledger, for tools that read the file directly */
  readonly ledger: Ledger

  constructor (ledger: Ledger) {
    this.ledger = ledger
  }

  static open (file: string): SqliteLedger {
    return new SqliteLedger(Ledger.open(file))
  }

  async balance (account: string): Promise<number> { return this.ledger.balance(account) }
  async accounts (): Promise<Array<{ account: string, balance: number }>> { return this.ledger.accounts() }
  async deposit (account: string, amount: number, memo?: string, now?: number): Promise<number> { return this.ledger.deposit(account, amount, memo, now) }
  async withdraw (account: string, amount: number, memo?: string, now?: number): Promise<number> { return this.ledger.withdraw(account, amount, memo, now) }
  async openHold (hold: NewHold): Promise<OpenHoldResult> { return this.ledger.openHold(hold) }
  async openHolds (holds: NewHold[]): Promise<HoldOutcome[]> { return this.ledger.openHolds(holds) }
  async reserve (reservation: NewReservation): Promise<ReserveResult> { return this.ledger.reserve(reservation) }
  async cancelReservation (buyer: string, purchase: string, reason: string, now?: number): Promise<EndReservationResult> { return this.ledger.cancelReservation(buyer, purchase, reason, now) }
  async expireReservations (now?: number, limit?: number): Promise<ReservationRecord[]> { return this.ledger.expireReservations(now, limit) }
  async reservations (filter?: { buyer?: string, state?: ReservationState, limit?: number }): Promise<ReservationRecord[]> { return this.ledger.reservations(filter) }
  async endHold (id: string, end: HoldEnd, reason: string, now?: number): Promise<EndHoldResult> { return this.ledger.endHold(id, end, reason, now) }
  async expireDue (now?: number, limit?: number): Promise<HoldRecord[]> { return this.ledger.expireDue(now, limit) }
  async hold (id: string): Promise<HoldRecord | undefined> { return this.ledger.hold(id) }
  async holdByRequest (request: string): Promise<HoldRecord | undefined> { return this.ledger.holdByRequest(request) }
  async answerByRequest (request: string): Promise<Uint8Array | undefined> { return this.ledger.answerByRequest(request) }
  async requestState (request: string, buyer: string, use?: PurchaseUse): Promise<RequestState> {
    const state: RequestState = { balance: this.ledger.balance(buyer) }
    const answer = this.ledger.answerByRequest(request)
    if (answer != null) state.answer = answer
    if (use != null) state.used = this.ledger.purchaseUsed(use.device, use.purchase)
    return state
  }
  async purchaseUsed (device: string, purchase: string): Promise<boolean> { return this.ledger.purchaseUsed(device, purchase) }
  async holdByPurchase (device: string, purchase: string): Promise<HoldRecord | undefined> { return this.ledger.holdByPurchase(device, purchase) }
  async holds (filter?: HoldFilter): Promise<HoldRecord[]> { return this.ledger.holds(filter) }
  async openHoldBuyers (): Promise<Map<string, number>> { return this.ledger.openHoldBuyers() }
  async postings (filter?: LedgerFilter): Promise<Posting[]> { return this.ledger.postings(filter) }
  async audit (): Promise<AuditReport> { return this.ledger.audit() }
  async close (): Promise<void> { this.ledger.close() }
}
