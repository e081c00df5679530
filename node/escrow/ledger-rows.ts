// The rows of holds and reservations as both engines store them (snake_case columns), and
// the records the ledger interface answers with.
import type { HoldRecord, HoldState, ReservationRecord, ReservationState } from './ledger-store.ts'

export interface HoldRow {
  id: string
  device: string
  purchase: string
  j: number
  buyer: string
  seller: string
  amount: number
  offer: string
  request: string
  request_bytes: Uint8Array
  answer: Uint8Array
  created_at: number
  expires_at: number
  state: HoldState
  ended_at: number | null
  end_reason: string | null
}

export interface ReservationRow {
  id: string
  device: string
  purchase: string
  j: number
  buyer: string
  seller: string
  amount: number
  offer: string
  created_at: number
  expires_at: number
  state: ReservationState
  hold_id: string | null
  ended_at: number | null
  end_reason: string | null
}

export function holdFromRow (r: HoldRow): HoldRecord {
  const hold: HoldRecord = {
    id: r.id,
    device: r.device,
    purchase: r.purchase,
    j: r.j,
    buyer: r.buyer,
    seller: r.seller,
    amount: r.amount,
    offer: r.offer,
    request: r.request,
    requestBytes: new Uint8Array(r.request_bytes),
    answer: new Uint8Array(r.answer),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    state: r.state
  }
  if (r.ended_at != null) hold.endedAt = r.ended_at
  if (r.end_reason != null) hold.endReason = r.end_reason
  return hold
}

export function reservationFromRow (r: ReservationRow): ReservationRecord {
  const reservation: ReservationRecord = {
    id: r.id,
    device: r.device,
    purchase: r.purchase,
    j: r.j,
    buyer: r.buyer,
    seller: r.seller,
    amount: r.amount,
    offer: r.offer,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    state: r.state
  }
  if (r.hold_id != null) reservation.hold = r.hold_id
  if (r.ended_at != null) reservation.endedAt = r.ended_at
  if (r.end_reason != null) reservation.endReason = r.end_reason
  return reservation
}
