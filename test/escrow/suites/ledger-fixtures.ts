// Ledger rows for the ledger tests: holds and reservations with fresh ids, and a snapshot of
// everything a ledger holds, to show that a refusal changed nothing.
import { randomBytes } from 'node:crypto'
import type { LedgerStore, NewHold, NewReservation } from '../../../node/escrow/ledger-store.ts'

export const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

export function newHold (buyer: string, amount: number, over: Partial<NewHold> = {}): NewHold {
  const now = Date.now()
  return {
    id: randomBytes(16).toString('hex'),
    device: 'device-1',
    purchase: randomBytes(16).toString('hex'),
    j: 1,
    buyer,
    seller: 'seller',
    amount,
    offer: 'offer',
    request: randomBytes(16).toString('hex'),
    requestBytes: bytes(40),
    answer: bytes(64),
    createdAt: now,
    expiresAt: now + 60_000,
    ...over
  }
}

/** the reservation of a hold's purchase, before its request */
export function newReservation (hold: NewHold, over: Partial<NewReservation> = {}): NewReservation {
  return { id: randomBytes(16).toString('hex'), device: hold.device, purchase: hold.purchase, j: hold.j, buyer: hold.buyer, seller: hold.seller, amount: hold.amount, offer: hold.offer, createdAt: hold.createdAt, expiresAt: hold.createdAt + 120_000, ...over }
}

/** everything a ledger holds, to show a refusal changed nothing */
export async function snapshot (ledger: LedgerStore): Promise<unknown> {
  return { accounts: await ledger.accounts(), postings: await ledger.postings({ limit: 100_000 }), holds: await ledger.holds({ limit: 100_000 }), audit: await ledger.audit() }
}
