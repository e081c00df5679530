/**
 * Frames a hostile peer might send, per protocol: a plausible request of the protocol's
 * shape, mutated (fields replaced by extreme or foreign values, removed, added), encoded
 * canonically, or not (keys out of order, undefined, invalid UTF-8, long integers, trailing
 * bytes), or broken as a frame (unknown kind, empty, bit flips, cut short, lengths beyond
 * the limit). A canonical frame must get an answer or a refusal; the rest may be reset.
 */
import { CID } from 'multiformats/cid'
import { encodeMessage } from '../../protocols/toolkit/codec.ts'
import { FrameKind } from '../../protocols/toolkit/frames.ts'
import { varint } from '../../protocols/toolkit/prefix.ts'

export const FUZZ_PROTOCOLS = {
  info: '/keyfair/escrow/info/1.0.0',
  account: '/keyfair/escrow/account/1.0.0',
  unblind: '/keyfair/escrow/unblind/1.0.0',
  settle: '/keyfair/escrow/settle/1.0.0',
  enroll: '/keyfair/agency/enroll/1.0.0',
  crl: '/keyfair/agency/crl/1.0.0',
  offer: '/keyfair/offer/1.0.0',
  content: '/keyfair/content/1.0.0',
  license: '/keyfair/license/1.0.0',
  renew: '/keyfair/escrow/renew/1.0.0'
} as const

export type FuzzProtocol = keyof typeof FUZZ_PROTOCOLS

/** Which process serves a protocol in the fuzz world */
export const SERVED_BY: Record<FuzzProtocol, 'agency' | 'escrow'> = {
  info: 'escrow', account: 'escrow', unblind: 'escrow', settle: 'escrow', enroll: 'agency', crl: 'agency', offer: 'escrow', content: 'escrow', license: 'escrow', renew: 'escrow'
}

export interface FuzzFrame {
  /** the bytes sent: length prefix, kind and body (or whatever the case makes of them) */
  bytes: Uint8Array
  /** canonical dag-cbor in a well-formed frame: within the protocol's limit, a reset would be a fault */
  canonical: boolean
  /** the frame's length as its prefix states it (kind and body) */
  length: number
  what: string
}

/** A small deterministic generator (xorshift32), so a run can be repeated by its seed */
export class Rng {
  private state: number
  constructor (seed: number) {
    this.state = (seed >>> 0) || 0x9e3779b9
  }

  next (): number {
    let x = this.state
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.state = x >>> 0
    return this.state / 0x100000000
  }

  int (n: number): number {
    return Math.floor(this.next() * n)
  }

  pick<T> (items: readonly T[]): T {
    return items[this.int(items.length)]!
  }

  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }
}

const SOME_CID = CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'

/** A request of each protocol's shape (fields plausible, signatures not) */
function base (protocol: FuzzProtocol, rng: Rng, peer: string): Record<string, unknown> {
  const at = Date.now()
  const signed = (kind: string, body: Record<string, unknown>): Record<string, unknown> => ({ v: 1, kind, body, sig: rng.bytes(64), cert: rng.bytes(300) })
  switch (protocol) {
    case 'info':
    case 'account':
    case 'crl':
      return { v: 1 }
    case 'enroll':
      return { v: 1, code: 'ABCD-EFGH-IJKL', csrs: { signing: PEM, encryption: PEM } }
    case 'offer':
      return rng.next() < 0.5 ? { v: 1, content: SOME_CID, limit: 5 } : { v: 1, keyword: 'music', limit: 32 }
    case 'content':
      return rng.next() < 0.3 ? { v: 1, content: SOME_CID, manifest: true } : { v: 1, content: SOME_CID, from: 0, count: 4 }
    case 'license':
      return { v: 1, offer: SOME_CID, signing: PEM, encryption: PEM }
    case 'unblind': {
      const terms = { v: 1, seller: peer, content: SOME_CID, price: 5, currency: 'EUR', escrows: [{ peer, n: rng.bytes(256) }], t: 1, expiry: at + 3_600_000 }
      const offer = { v: 1, kind: 'offer', body: { v: 1, terms, title: 't', tags: [], kc: rng.bytes(32), salt: rng.bytes(16), shares: [{ j: 1, c: rng.bytes(256), dem: rng.bytes(60) }] }, sig: rng.bytes(64), signer: peer }
      return { v: 1, request: signed('unblind-request', { v: 1, purchase: 'ab'.repeat(16), offer, j: 1, b: rng.bytes(256), amount: 5, buyer: peer, at }) }
    }
    case 'renew':
      return { v: 1, request: signed('renewal-request', { v: 1, offer: SOME_CID, nonce: rng.bytes(16), at }) }
    case 'settle':
      return rng.next() < 0.5
        ? { v: 1, settlement: signed('receipt', { v: 1, purchase: 'ab'.repeat(16), offer: SOME_CID, at }) }
        : { v: 1, settlement: signed('dispute', { v: 1, purchase: 'ab'.repeat(16), offer: SOME_CID, reason: 'key', openings: [{ j: 1, x: rng.bytes(256) }], at }) }
  }
}

/** Values no field expects: extreme integers, wrong types, large and nested things */
function foreign (rng: Rng, depth = 0): unknown {
  // containers only near the top: a value stays small enough to send
  const pick = rng.int(depth >= 2 ? 14 : 17)
  switch (pick) {
    case 0: return 0
    case 1: return -1
    case 2: return Number.MAX_SAFE_INTEGER
    case 3: return -Number.MAX_SAFE_INTEGER
    case 4: return 2 ** 53
    case 5: return 1.5
    case 6: return 8.64e15 + 1
    case 7: return null
    case 8: return rng.next() < 0.5
    case 9: return ''
    case 10: return 'x'.repeat(rng.pick([1, 100, 5000, 70_000]))
    case 11: return rng.bytes(rng.pick([0, 1, 32, 257, 4096]))
    case 12: return SOME_CID
    case 13: return 2 ** 64
    case 14: return Array.from({ length: rng.pick([0, 1, 50, 2000]) }, () => foreign(rng, 2))
    case 15: return { v: foreign(rng, depth + 1), x: foreign(rng, depth + 1) }
    default: return Array.from({ length: 40 }, () => ({ j: 1, x: foreign(rng, 2) }))
  }
}

/** Replaces, removes or adds a field somewhere in a (nested) request */
function mutate (value: Record<string, unknown>, rng: Rng): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...value }
  const keys = Object.keys(copy)
  const key = rng.pick(keys)
  const child = copy[key]
  const roll = rng.next()
  if (child != null && typeof child === 'object' && !Array.isArray(child) && !(child instanceof Uint8Array) && CID.asCID(child) == null && roll < 0.5) {
    copy[key] = mutate(child as Record<string, unknown>, rng)
  } else if (roll < 0.8) {
    copy[key] = foreign(rng)
  } else if (roll < 0.9) {
    delete copy[key]
  } else {
    copy[rng.pick(['extra', 'zz', 'body', 'sig', 'v'])] = foreign(rng)
  }
  return copy
}

function frame (kind: number, body: Uint8Array): Uint8Array {
  const head = varint(body.byteLength + 1)
  const out = new Uint8Array(head.length + 1 + body.byteLength)
  out.set(head)
  out[head.length] = kind
  out.set(body, head.length + 1)
  return out
}

/** Encodings of `{ v: 1, … }` that are not strict dag-cbor */
const NON_CANONICAL: Array<[string, Uint8Array]> = [
  ['keys out of order', Uint8Array.of(0xa2, 0x62, 0x61, 0x61, 0x01, 0x61, 0x76, 0x01)],
  ['duplicate keys', Uint8Array.of(0xa2, 0x61, 0x76, 0x01, 0x61, 0x76, 0x01)],
  ['undefined', Uint8Array.of(0xa2, 0x61, 0x73, 0xf7, 0x61, 0x76, 0x01)],
  ['invalid UTF-8', Uint8Array.of(0xa2, 0x61, 0x73, 0x62, 0xff, 0xfe, 0x61, 0x76, 0x01)],
  ['long integer', Uint8Array.of(0xa1, 0x61, 0x76, 0x18, 0x01)],
  ['float for integer', Uint8Array.of(0xa1, 0x61, 0x76, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)],
  ['indefinite map', Uint8Array.of(0xbf, 0x61, 0x76, 0x01, 0xff)],
  ['trailing bytes', Uint8Array.of(0xa1, 0x61, 0x76, 0x01, 0x00)]
]

/** The i-th fuzz frame of a protocol (deterministic for a given rng) */
export function fuzzFrame (protocol: FuzzProtocol, rng: Rng, peer: string): FuzzFrame {
  const roll = rng.next()
  if (roll < 0.6) {
    // canonical encodings of mutated requests (one to three mutations)
    let value = base(protocol, rng, peer)
    const n = 1 + rng.int(3)
    for (let i = 0; i < n; i++) value = mutate(value, rng)
    let body: Uint8Array
    try {
      body = encodeMessage(value)
    } catch {
      body = encodeMessage({ v: 1 })
    }
    return { bytes: frame(FrameKind.MESSAGE, body), canonical: true, length: body.byteLength + 1, what: 'mutated request' }
  }
  if (roll < 0.7) {
    const body = encodeMessage(base(protocol, rng, peer))
    return { bytes: frame(FrameKind.MESSAGE, body), canonical: true, length: body.byteLength + 1, what: 'plausible request' }
  }
  if (roll < 0.8) {
    const [what, body] = rng.pick(NON_CANONICAL)
    return { bytes: frame(FrameKind.MESSAGE, body), canonical: false, length: 0, what }
  }
  const body = encodeMessage(base(protocol, rng, peer))
  const bytes = frame(FrameKind.MESSAGE, body)
  switch (rng.int(6)) {
    case 0: {
      // bit flips anywhere (the prefix included)
      for (let i = 0; i < 1 + rng.int(4); i++) bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8)
      return { bytes, canonical: false, length: 0, what: 'bit flips' }
    }
    case 1: return { bytes: bytes.subarray(0, rng.int(bytes.length)), canonical: false, length: 0, what: 'cut short' }
    case 2: return { bytes: frame(rng.pick([FrameKind.ERROR, FrameKind.DATA, 3, 255]), body), canonical: false, length: 0, what: 'wrong kind' }
    case 3: return { bytes: Uint8Array.of(0), canonical: false, length: 0, what: 'empty frame' }
    case 4: return { bytes: Uint8Array.from(varint(rng.pick([64 * 1024 * 1024, 2 ** 40, 41 * 1024 * 1024]))), canonical: false, length: 0, what: 'length beyond the limit' }
    default: return { bytes: rng.bytes(1 + rng.int(300)), canonical: false, length: 0, what: 'random bytes' }
  }
}
