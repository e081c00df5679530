// A purchase's progress as the page shows it: bytes, rate and time left of the download, and
// each escrow's state, folded from the node's progress events as they arrive.
import type { ProgressOf } from '../api.ts'

export type BuyEvent = ProgressOf<'buy'>

export interface EscrowView { j: number, peer: string, state: string, code?: string, have: number, need: number }

export interface BuyView {
  bytes: number
  total: number
  providers: number
  /** bytes per second over the download so far */
  rate: number
  /** seconds left at that rate; undefined until there is a rate */
  eta?: number
  escrows: EscrowView[]
  dropped: Array<{ provider: string, reason: string }>
  bound?: boolean
  played: number
  events: number
  startedAt: number
}

export function startView (now: number): BuyView {
  return { bytes: 0, total: 0, providers: 0, rate: 0, escrows: [], dropped: [], played: 0, events: 0, startedAt: now }
}

export function foldBuy (view: BuyView, event: BuyEvent, now: number): BuyView {
  const next = { ...view, events: view.events + 1 }
  switch (event.phase) {
    case 'download': {
      const seconds = (now - view.startedAt) / 1000
      const rate = seconds > 0.2 ? event.bytes / seconds : 0
      return { ...next, bytes: event.bytes, total: event.total, providers: event.providers, rate, eta: rate > 0 ? Math.max(0, (event.total - event.bytes) / rate) : undefined }
    }
    case 'provider-dropped': return { ...next, dropped: [...view.dropped, { provider: event.provider, reason: event.reason }] }
    case 'licence': return { ...next, bound: event.bound }
    case 'escrow': {
      const escrow: EscrowView = { j: event.j, peer: event.peer, state: event.state, have: event.have, need: event.need, ...(event.code != null ? { code: event.code } : {}) }
      return { ...next, escrows: [...view.escrows.filter(e => e.j !== event.j), escrow].sort((a, b) => a.j - b.j) }
    }
    case 'play': return { ...next, played: event.bytes }
  }
}

export function formatEta (seconds: number | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return '—'
  if (seconds < 60) return `${Math.ceil(seconds)} s`
  return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`
}
