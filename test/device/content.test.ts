// Content format: round trips, streaming, and every tampering detected without
// releasing unauthenticated plaintext.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  chunkCountFor, decryptContent, encryptContent, generateContentSecrets, openChunk,
  openVerifiedChunk, sealChunk, validateManifest, verifyChunk
} from '../../device/crypto/content.ts'
import type { ContentManifest, SealedChunk, StoredChunk } from '../../device/crypto/content.ts'
import { concat, sha256 } from '../../device/crypto/bytes.ts'
import { collect } from './fixtures.ts'

interface Work {
  key: Uint8Array
  salt: Uint8Array
  noncePrefix: Uint8Array
  plaintext: Uint8Array
  chunkSize: number
  chunks: SealedChunk[]
  manifest: ContentManifest
}

async function encryptWork (plaintext: Uint8Array, chunkSize: number, pieces: number[] = [], secrets = generateContentSecrets()): Promise<Work> {
  // split the plaintext at the given cut points (may produce empty pieces)
  const cuts = pieces.map((c) => c % (plaintext.length + 1)).sort((a, b) => a - b)
  const parts: Uint8Array[] = []
  let prev = 0
  for (const c of cuts) {
    parts.push(plaintext.subarray(prev, c))
    prev = c
  }
  parts.push(plaintext.subarray(prev))
  async function * source (): AsyncGenerator<Uint8Array> { yield * parts }
  const enc = encryptContent(source(), { ...secrets, chunkSize })
  const chunks = await collect(enc)
  return { ...secrets, plaintext, chunkSize, chunks, manifest: enc.manifest() }
}

function plainChunks (w: Work): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < w.manifest.chunkCount; i++) out.push(w.plaintext.subarray(i * w.chunkSize, (i + 1) * w.chunkSize))
  return out
}

interface Outcome {
  yielded: Uint8Array[]
  error?: Error & { code?: string }
}

async function tryDecrypt (stored: StoredChunk[], manifest: ContentManifest, key: Uint8Array): Promise<Outcome> {
  const yielded: Uint8Array[] = []
  try {
    for await (const pt of decryptContent(stored, manifest, key)) yielded.push(pt)
    return { yielded }
  } catch (err) {
    return { yielded, error: err as Error & { code?: string } }
  }
}

/** A manifest made to fit the given stored chunks exactly (what an attacker controlling hashes could do) */
function forgeManifest (m: ContentManifest, stored: StoredChunk[]): ContentManifest {
  const size = stored.reduce((s, c) => s + c.data.length - 16, 0)
  return { ...m, size, chunkCount: stored.length, chunkHashes: stored.map((c) => sha256(c.data)) }
}

function flipBit (data: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(data)
  const i = Math.floor(bit / 8) % out.length
  out[i] = (out[i] ?? 0) ^ (1 << (bit % 8))
  return out
}

type Tamper =
  | { kind: 'reorder', from: number, to: number }
  | { kind: 'swap', a: number, b: number }
  | { kind: 'foreign', at: number }
  | { kind: 'truncate', drop: number }
  | { kind: 'extend', extraFrom: number }
  | { kind: 'flip', at: number, bit: number }

const tamperArb: fc.Arbitrary<Tamper> = fc.oneof(
  fc.record({ kind: fc.constant('reorder' as const), from: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('foreign' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), drop: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extraFrom: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat() })
)

/**
 * Applies the tampering to the stored chunk list. `foreign` is a work with the same
 * key and nonce prefix but another salt (the strongest "other work" case).
 * Returns undefined when the tampering is a no-op for this work (e.g. one chunk).
 */
function tamper (w: Work, foreign: Work, t: Tamper, relabel: boolean): StoredChunk[] | undefined {
  const data = w.chunks.map((c) => c.data)
  const count = data.length
  let out: Uint8Array[]
  switch (t.kind) {
    case 'reorder': {
      if (count < 2) return undefined
      const from = t.from % count
      let to = t.to % count
      if (to === from) to = (to + 1) % count
      out = [...data]
      const [moved] = out.splice(from, 1)
      out.splice(to, 0, moved ?? new Uint8Array())
      break
    }
    case 'swap': {
      if (count < 2) return undefined
      const a = t.a % count
      let b = t.b % count
      if (a === b) b = (b + 1) % count
      out = [...data]
      out[a] = data[b] ?? new Uint8Array()
      out[b] = data[a] ?? new Uint8Array()
      break
    }
    case 'foreign': {
      const at = t.at % Math.min(count, foreign.chunks.length)
      out = [...data]
      out[at] = foreign.chunks[at]?.data ?? new Uint8Array()
      break
    }
    case 'truncate': {
      if (count < 2) return undefined
      out = data.slice(0, count - 1 - (t.drop % (count - 1)))
      break
    }
    case 'extend': {
      // append a chunk: a copy of one of ours, or the foreign work's chunk at that index
      const pool = [...data, ...foreign.chunks.map((c) => c.data)]
      out = [...data, pool[t.extraFrom % pool.length] ?? new Uint8Array()]
      break
    }
    case 'flip': {
      const at = t.at % count
      const target = data[at] ?? new Uint8Array()
      out = [...data]
      out[at] = flipBit(target, t.bit % (target.length * 8))
      break
    }
  }
  if (relabel) return out.map((d, index) => ({ index, data: d }))
  // keep each chunk's original label where it is one of ours: a provider serving them out of order
  return out.map((d, pos) => {
    const orig = data.findIndex((x) => x === d)
    return { index: orig >= 0 ? orig : pos, data: d }
  })
}

/** Index of the first stored position that differs from the honest list */
function firstDifference (honest: SealedChunk[], stored: StoredChunk[]): number {
  for (let i = 0; i < stored.length; i++) {
    const s = stored[i]
    const h = honest[i]
    if (s === undefined || h === undefined || s.index !== h.index || s.data !== h.data) return i
  }
  return stored.length
}

// lengths drawn uniformly (fast-check's default bias would give mostly one-chunk works)
const plaintextArb = (max: number): fc.Arbitrary<Uint8Array> =>
  fc.integer({ min: 0, max }).chain((len) => fc.uint8Array({ minLength: len, maxLength: len }))

const workArb = fc.record({
  plaintext: plaintextArb(300),
  chunkSize: fc.integer({ min: 1, max: 48 }),
  pieces: fc.array(fc.nat(), { maxLength: 6 })
})

describe('content format', () => {
  it('round-trips random sizes, chunk sizes and input splits (incl. empty and exact multiples)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        workArb,
        // exact multiples of the chunk size
        fc.record({ chunkSize: fc.integer({ min: 1, max: 32 }), k: fc.integer({ min: 1, max: 5 }), pieces: fc.array(fc.nat(), { maxLength: 4 }) })
          .chain(({ chunkSize, k, pieces }) => fc.record({
            plaintext: fc.uint8Array({ minLength: chunkSize * k, maxLength: chunkSize * k }),
            chunkSize: fc.constant(chunkSize),
            pieces: fc.constant(pieces)
          }))
      ),
      async ({ plaintext, chunkSize, pieces }) => {
        const w = await encryptWork(plaintext, chunkSize, pieces)
        const count = chunkCountFor(plaintext.length, chunkSize)
        assert.equal(w.chunks.length, count)
        assert.equal(w.manifest.chunkCount, count)
        assert.equal(w.manifest.size, plaintext.length)
        assert.equal(w.manifest.v, 1)
        validateManifest(w.manifest)
        w.chunks.forEach((c, i) => {
          assert.equal(c.index, i)
          assert.equal(c.last, i === count - 1)
          const expectedLen = i < count - 1 ? chunkSize : plaintext.length - (count - 1) * chunkSize
          assert.equal(c.data.length, expectedLen + 16)
          assert.ok(verifyChunk(w.manifest, i, c.data))
        })
        const out = await collect(decryptContent(w.chunks, w.manifest, w.key))
        assert.deepEqual(concat(...out), plaintext)
        assert.deepEqual(out, plainChunks(w))
      }
    ), { numRuns: 150 })
  })

  it('an empty work is one empty final chunk', async () => {
    const w = await encryptWork(new Uint8Array(0), 16)
    assert.equal(w.chunks.length, 1)
    assert.equal(w.chunks[0]?.last, true)
    assert.equal(w.chunks[0]?.data.length, 16)
    const out = await collect(decryptContent(w.chunks, w.manifest, w.key))
    assert.deepEqual(out, [new Uint8Array(0)])
  })

  it('streams lazily with one chunk of lookahead', async () => {
    const chunkSize = 1000
    let pulled = 0
    async function * source (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 50; i++) {
        pulled += 333
        yield new Uint8Array(333).fill(i)
      }
    }
    const enc = encryptContent(source(), { ...generateContentSecrets(), chunkSize })
    let seen = 0
    for await (const chunk of enc) {
      // at chunk i we hold at most chunk i+1 partly filled plus one input piece
      assert.ok(pulled <= (chunk.index + 2) * chunkSize + 333, `pulled ${pulled} at chunk ${chunk.index}`)
      seen++
    }
    assert.equal(seen, Math.ceil(50 * 333 / chunkSize))
    assert.equal(enc.manifest().size, 50 * 333)
  })

  it('handles a multi-megabyte stream with the default 1 MiB chunks', async () => {
    const piece = new Uint8Array(100_000).fill(7)
    const total = 35
    async function * source (): AsyncGenerator<Uint8Array> { for (let i = 0; i < total; i++) yield piece }
    const secrets = generateContentSecrets()
    const enc = encryptContent(source(), secrets)
    const chunks = await collect(enc)
    const m = enc.manifest()
    assert.equal(m.chunkSize, 1024 * 1024)
    assert.equal(m.chunkCount, Math.ceil(total * piece.length / m.chunkSize))
    let size = 0
    for await (const pt of decryptContent(chunks, m, secrets.key)) size += pt.length
    assert.equal(size, total * piece.length)
  })

  it('manifest is available only after the last chunk; iterate once', async () => {
    const enc = encryptContent([new Uint8Array(40)], { ...generateContentSecrets(), chunkSize: 16 })
    assert.throws(() => enc.manifest(), { code: 'ERR_INVALID_STATE' })
    const it = enc[Symbol.asyncIterator]()
    await it.next()
    assert.throws(() => enc.manifest(), { code: 'ERR_INVALID_STATE' })
    await it.next()
    const third = await it.next()
    assert.equal(third.done, false)
    // a consumer that stops at the last chunk still gets the manifest
    assert.equal(enc.manifest().chunkCount, 3)
    assert.throws(() => enc[Symbol.asyncIterator](), { code: 'ERR_INVALID_STATE' })
  })

  it('rejects bad parameters with typed errors', async () => {
    const s = generateContentSecrets()
    assert.throws(() => encryptContent([], { ...s, key: new Uint8Array(31) }), { name: 'InvalidArgumentError', code: 'ERR_INVALID_ARG' })
    assert.throws(() => encryptContent([], { ...s, salt: new Uint8Array(15) }), { code: 'ERR_INVALID_ARG' })
    assert.throws(() => encryptContent([], { ...s, noncePrefix: new Uint8Array(12) }), { code: 'ERR_INVALID_ARG' })
    assert.throws(() => encryptContent([], { ...s, chunkSize: 0 }), { code: 'ERR_INVALID_ARG' })
    assert.throws(() => encryptContent([], { ...s, chunkSize: 1.5 }), { code: 'ERR_INVALID_ARG' })
    const w = await encryptWork(new Uint8Array(20), 8)
    for (const bad of [
      { ...w.manifest, v: 2 },
      { ...w.manifest, chunkCount: 2 },
      { ...w.manifest, size: 30 },
      { ...w.manifest, chunkHashes: w.manifest.chunkHashes.slice(1) },
      { ...w.manifest, salt: new Uint8Array(8) },
      { ...w.manifest, chunkSize: 0 }
    ]) {
      const { error } = await tryDecrypt(w.chunks, bad as ContentManifest, w.key)
      assert.equal(error?.code, 'ERR_MANIFEST')
    }
  })

  it('sealChunk/openChunk: any change of key, salt, prefix, index or last flag fails authentication', () => {
    const s = generateContentSecrets()
    const o = generateContentSecrets()
    const plaintext = new Uint8Array([1, 2, 3, 4, 5])
    const data = sealChunk({ ...s, index: 5, last: false, plaintext })
    assert.deepEqual(openChunk({ ...s, index: 5, last: false, data }), plaintext)
    for (const p of [
      { ...s, key: o.key, index: 5, last: false },
      { ...s, salt: o.salt, index: 5, last: false },
      { ...s, noncePrefix: o.noncePrefix, index: 5, last: false },
      { ...s, index: 4, last: false },
      { ...s, index: 5, last: true }
    ]) {
      assert.throws(() => openChunk({ ...p, data }), { name: 'ChunkAuthError', code: 'ERR_CHUNK_AUTH' })
    }
    assert.throws(() => openChunk({ ...s, index: 5, last: false, data: data.subarray(0, 10) }), { code: 'ERR_CHUNK_AUTH' })
  })

  it('verifyChunk and openVerifiedChunk need the exact stored chunk', async () => {
    const w = await encryptWork(new Uint8Array(50).fill(1), 16)
    const c1 = w.chunks[1]?.data ?? new Uint8Array()
    assert.ok(verifyChunk(w.manifest, 1, c1))
    assert.ok(!verifyChunk(w.manifest, 2, c1))
    assert.ok(!verifyChunk(w.manifest, 9, c1))
    assert.ok(!verifyChunk(w.manifest, 1, flipBit(c1, 3)))
    assert.deepEqual(openVerifiedChunk(w.manifest, w.key, 1, c1), w.plaintext.subarray(16, 32))
    assert.throws(() => openVerifiedChunk(w.manifest, w.key, 2, c1), { name: 'ChunkHashError', code: 'ERR_CHUNK_HASH' })
    const wrongKey = generateContentSecrets().key
    assert.throws(() => openVerifiedChunk(w.manifest, wrongKey, 1, c1), { code: 'ERR_CHUNK_AUTH' })
  })

  it('verifyChunk takes a chunk as the pieces it arrived in, split anywhere', async () => {
    const w = await encryptWork(crypto.getRandomValues(new Uint8Array(300)), 128)
    const c1 = w.chunks[1]?.data ?? new Uint8Array()
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: c1.length - 1 }), { maxLength: 6 }), fc.nat(), (cuts, flip) => {
      const at = [0, ...cuts.sort((a, b) => a - b), c1.length]
      const pieces = at.slice(1).map((end, i) => c1.subarray(at[i], end))
      assert.ok(verifyChunk(w.manifest, 1, pieces))
      assert.ok(!verifyChunk(w.manifest, 2, pieces))
      const bad: Uint8Array[] = pieces.map(p => p.slice())
      const where = flip % c1.length
      let piece = 0
      while (where >= at[piece + 1]!) piece++
      bad[piece] = flipBit(bad[piece]!, where - at[piece]!)
      assert.ok(!verifyChunk(w.manifest, 1, bad), 'a flipped bit in any piece is caught')
      assert.ok(!verifyChunk(w.manifest, 1, pieces.slice(0, -1)), 'a missing piece is caught')
    }), { numRuns: 50 })
  })

  describe('tampering', () => {
    const tamperCase = fc.record({ work: workArb, t: tamperArb, foreignPieces: fc.array(fc.nat(), { maxLength: 2 }) })

    async function setup (work: { plaintext: Uint8Array, chunkSize: number, pieces: number[] }): Promise<{ w: Work, foreign: Work }> {
      const w = await encryptWork(work.plaintext, work.chunkSize, work.pieces)
      // same key and nonce prefix, other salt: only the AAD tells the works apart
      const other = generateContentSecrets()
      const foreign = await encryptWork(new Uint8Array(work.plaintext.length + work.chunkSize).fill(0xaa), work.chunkSize, [],
        { key: w.key, noncePrefix: w.noncePrefix, salt: other.salt })
      return { w, foreign }
    }

    it('is detected by the manifest, and only the authenticated prefix is ever yielded', async () => {
      await fc.assert(fc.asyncProperty(tamperCase, fc.boolean(), async ({ work, t }, relabel) => {
        const { w, foreign } = await setup(work)
        const stored = tamper(w, foreign, t, relabel)
        if (stored === undefined) return
        const { yielded, error } = await tryDecrypt(stored, w.manifest, w.key)
        assert.ok(error !== undefined, `tampering ${t.kind} not detected`)
        const expectedCodes: Record<Tamper['kind'], string[]> = {
          reorder: ['ERR_CHUNK_ORDER', 'ERR_CHUNK_HASH'],
          swap: ['ERR_CHUNK_ORDER', 'ERR_CHUNK_HASH'],
          foreign: ['ERR_CHUNK_HASH'],
          truncate: ['ERR_TRUNCATED'],
          extend: ['ERR_EXTRA_CHUNK'],
          flip: ['ERR_CHUNK_HASH']
        }
        assert.ok(expectedCodes[t.kind].includes(error.code ?? ''), `${t.kind}: got ${error.code}`)
        const k = firstDifference(w.chunks, stored)
        assert.equal(yielded.length, k, 'decryption stops exactly at the first bad chunk')
        assert.deepEqual(yielded, plainChunks(w).slice(0, k))
      }), { numRuns: 300 })
    })

    it('is detected by AES-GCM alone when the hashes are forged to fit (STREAM binding)', async () => {
      await fc.assert(fc.asyncProperty(tamperCase, async ({ work, t }) => {
        const { w, foreign } = await setup(work)
        const stored = tamper(w, foreign, t, true)
        if (stored === undefined) return
        const forged = forgeManifest(w.manifest, stored)
        const { yielded, error } = await tryDecrypt(stored, forged, w.key)
        assert.ok(error !== undefined, `tampering ${t.kind} not detected`)
        // a forged manifest that cannot even describe the chunks is caught structurally
        assert.ok(['ERR_CHUNK_AUTH', 'ERR_MANIFEST', 'ERR_CHUNK_HASH'].includes(error.code ?? ''), `${t.kind}: got ${error.code}`)
        const honest = plainChunks(w)
        assert.ok(yielded.length <= firstDifference(w.chunks, stored))
        yielded.forEach((pt, i) => { assert.deepEqual(pt, honest[i]) })
      }), { numRuns: 300 })
    })

    it('truncation at a chunk boundary is caught by the last flag even with a fitting manifest', async () => {
      const w = await encryptWork(new Uint8Array(64).fill(3), 16)
      const stored = w.chunks.slice(0, 3).map(({ index, data }) => ({ index, data }))
      const { yielded, error } = await tryDecrypt(stored, forgeManifest(w.manifest, stored), w.key)
      assert.equal(error?.code, 'ERR_CHUNK_AUTH')
      assert.equal(yielded.length, 2)
    })

    it('extension after a full final chunk is caught by the last flag even with a fitting manifest', async () => {
      const w = await encryptWork(new Uint8Array(48).fill(3), 16)
      const stored: StoredChunk[] = w.chunks.map(({ index, data }) => ({ index, data }))
      stored.push({ index: 3, data: w.chunks[0]?.data ?? new Uint8Array() })
      const { yielded, error } = await tryDecrypt(stored, forgeManifest(w.manifest, stored), w.key)
      assert.equal(error?.code, 'ERR_CHUNK_AUTH')
      assert.equal(yielded.length, 2)
    })

    it('a bit flip in the manifest salt or nonce prefix yields nothing', async () => {
      await fc.assert(fc.asyncProperty(workArb, fc.nat(), fc.boolean(), async (work, bit, inSalt) => {
        const w = await encryptWork(work.plaintext, work.chunkSize, work.pieces)
        const m = inSalt
          ? { ...w.manifest, salt: flipBit(w.manifest.salt, bit % 128) }
          : { ...w.manifest, noncePrefix: flipBit(w.manifest.noncePrefix, bit % 64) }
        const { yielded, error } = await tryDecrypt(w.chunks, m, w.key)
        assert.equal(error?.code, 'ERR_CHUNK_AUTH')
        assert.equal(yielded.length, 0)
      }), { numRuns: 50 })
    })

    it('a missing final chunk is an error at the end, never a silent end', async () => {
      const w = await encryptWork(new Uint8Array(33), 16)
      const { yielded, error } = await tryDecrypt(w.chunks.slice(0, 2), w.manifest, w.key)
      assert.equal(error?.name, 'TruncatedError')
      assert.equal(error?.code, 'ERR_TRUNCATED')
      assert.equal(yielded.length, 2)
      const none = await tryDecrypt([], w.manifest, w.key)
      assert.equal(none.error?.code, 'ERR_TRUNCATED')
    })

    it('error messages carry no key or plaintext', async () => {
      const w = await encryptWork(new Uint8Array(40).fill(0x41), 16)
      const stored = w.chunks.map(({ index, data }) => ({ index, data: index === 1 ? flipBit(data, 0) : data }))
      const { error } = await tryDecrypt(stored, forgeManifest(w.manifest, stored), w.key)
      assert.ok(error !== undefined)
      const text = `${error.message} ${error.stack ?? ''}`
      assert.ok(!text.includes(Buffer.from(w.key).toString('hex')))
      assert.ok(!text.includes('AAAA'))
    })
  })
})
