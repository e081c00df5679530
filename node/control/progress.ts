// The progress events a streamed control answer may carry (`publish`, `buy`, `play`), and
// the one function that turns a value into a line of it. Only these events, copied field by
// field, cross the control API: an object from a library (a dial event, a connection) that
// reached a progress callback is dropped, never serialised.

/** An escrow's part in a purchase: the price reserved, asked for its share, holding the price, its share taken, or refused */
export type EscrowState = 'reserved' | 'asked' | 'held' | 'answered' | 'refused'

export type PublishProgress =
  /** the escrows the offer will name, checked against the agency */
  | { phase: 'escrows', escrows: string[] }
  /** plaintext bytes encrypted so far, of the file's size */
  | { phase: 'encrypt', bytes: number, total: number }
  /** the offer is stored; the content and its keywords are being announced */
  | { phase: 'announce' }

export type BuyProgress =
  /** plaintext bytes of the work on disk and verified, from this many providers (`provider` served the last chunk) */
  | { phase: 'download', bytes: number, total: number, providers: number, provider?: string }
  | { phase: 'provider-dropped', provider: string, reason: string }
  /** the seller's device-bound licence (bound) or the offer's open shares (not bound) */
  | { phase: 'licence', bound: boolean }
  /** escrow j of the offer; `code` says why it refused or failed; have of need shares are taken */
  | { phase: 'escrow', j: number, peer: string, state: EscrowState, code?: string, have: number, need: number }
  | PlayProgress

/** plaintext bytes written by the sealed device, of the work's size when known */
export type PlayProgress = { phase: 'play', bytes: number, total?: number }

export type ProgressEvent = PublishProgress | BuyProgress

type FieldKind = 'number' | 'string' | 'boolean' | 'strings' | 'state'
type Shape = Record<string, { kind: FieldKind, optional?: true }>

const ESCROW_STATES: readonly string[] = ['reserved', 'asked', 'held', 'answered', 'refused'] satisfies EscrowState[]

/** Every phase and its fields: what is not here does not leave the node */
const SHAPES: Record<ProgressEvent['phase'], Shape> = {
  escrows: { escrows: { kind: 'strings' } },
  encrypt: { bytes: { kind: 'number' }, total: { kind: 'number' } },
  announce: {},
  download: { bytes: { kind: 'number' }, total: { kind: 'number' }, providers: { kind: 'number' }, provider: { kind: 'string', optional: true } },
  'provider-dropped': { provider: { kind: 'string' }, reason: { kind: 'string' } },
  licence: { bound: { kind: 'boolean' } },
  escrow: { j: { kind: 'number' }, peer: { kind: 'string' }, state: { kind: 'state' }, code: { kind: 'string', optional: true }, have: { kind: 'number' }, need: { kind: 'number' } },
  play: { bytes: { kind: 'number' }, total: { kind: 'number', optional: true } }
}

/** Longest string field copied (peer ids, codes and reasons are far shorter) */
const MAX_STRING = 512
const MAX_LIST = 64

/**
 * The typed event in `value`, as a new plain object of its known fields only; undefined
 * when `value` is not one (unknown phase, a field missing or of the wrong type). Reads
 * only own data properties, so no getter or `toJSON` of a foreign object runs.
 */
export function progressLine (value: unknown): ProgressEvent | undefined {
  if (value == null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const phase = ownValue(value, 'phase')
  if (typeof phase !== 'string' || !Object.hasOwn(SHAPES, phase)) return undefined
  const copy: Record<string, unknown> = { phase }
  for (const [name, field] of Object.entries(SHAPES[phase as ProgressEvent['phase']])) {
    const v = ownValue(value, name)
    if (v === undefined && field.optional === true) continue
    const checked = checkField(v, field.kind)
    if (checked === undefined) return undefined
    copy[name] = checked
  }
  return copy as ProgressEvent
}

function checkField (v: unknown, kind: FieldKind): unknown {
  switch (kind) {
    case 'number': return typeof v === 'number' && Number.isFinite(v) ? v : undefined
    case 'string': return typeof v === 'string' ? v.slice(0, MAX_STRING) : undefined
    case 'boolean': return typeof v === 'boolean' ? v : undefined
    case 'state': return typeof v === 'string' && ESCROW_STATES.includes(v) ? v : undefined
    case 'strings': return Array.isArray(v) && v.length <= MAX_LIST && v.every(x => typeof x === 'string') ? v.map(x => (x as string).slice(0, MAX_STRING)) : undefined
  }
}

/** An own data property's value; a getter is not called */
function ownValue (value: object, name: string): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(value, name)
  return descriptor != null && 'value' in descriptor ? descriptor.value : undefined
}
