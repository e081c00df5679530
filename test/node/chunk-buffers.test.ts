// The reused buffers a download joins each chunk into before hashing and writing it
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ChunkBuffers } from '../../node/content/chunk-buffers.ts'

describe('chunk buffers', () => {
  it('join the pieces in order, whatever the split', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uniqueArray(fc.nat(), { maxLength: 8 }), (bytes, cutsAt) => {
      const cuts = [...new Set(cutsAt.map(c => c % bytes.length))].sort((a, b) => a - b)
      const at = [0, ...cuts.filter(c => c > 0), bytes.length]
      const pieces = at.slice(1).map((end, i) => bytes.subarray(at[i], end))
      const buffers = new ChunkBuffers(300, 2)
      const chunk = buffers.join(pieces, bytes.length)
      assert.deepEqual(chunk, bytes)
      assert.equal(chunk.length, bytes.length)
    }))
  })

  it('reuse a released buffer, and keep no more idle ones than asked', () => {
    const buffers = new ChunkBuffers(16, 1)
    const a = buffers.join([Uint8Array.of(1, 2, 3)], 3)
    const b = buffers.join([Uint8Array.of(4)], 1)
    assert.notEqual(a.buffer, b.buffer)
    buffers.release(a)
    buffers.release(b)
    const c = buffers.join([Uint8Array.of(9, 9)], 2)
    assert.equal(c.buffer, a.buffer, 'the first released buffer is reused')
    assert.deepEqual(c, Uint8Array.of(9, 9))
    const d = buffers.join([Uint8Array.of(7)], 1)
    assert.notEqual(d.buffer, b.buffer, 'a buffer past the idle limit was dropped')
  })

  it('give a chunk larger than the pool its own buffer, never pooled', () => {
    const buffers = new ChunkBuffers(4, 4)
    const big = buffers.join([Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5, 6)], 6)
    assert.deepEqual(big, Uint8Array.of(1, 2, 3, 4, 5, 6))
    buffers.release(big)
    const next = buffers.join([Uint8Array.of(1)], 1)
    assert.notEqual(next.buffer, big.buffer)
    assert.equal(next.buffer.byteLength, 4)
  })
})
