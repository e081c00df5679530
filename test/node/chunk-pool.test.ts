import assert from 'node:assert/strict'
import { ChunkPool } from '../../node/buyer/chunk-pool.ts'

describe('ChunkPool: the buffers a download receives its chunks into', function () {
  it('gives a returned buffer out again, whole, for any chunk that fits it', function () {
    const pool = new ChunkPool(300, 2)
    const first = pool.take(300)
    assert.equal(first.length, 300)
    pool.give(first.subarray(0, 120))
    const again = pool.take(40)
    assert.equal(again.buffer, first.buffer, 'the same memory, reused')
    assert.equal(again.length, 300)
  })

  it('keeps at most `keep` idle buffers and never pools a stranger or an oversized one', function () {
    const pool = new ChunkPool(16, 1)
    const a = pool.take(16)
    const b = pool.take(16)
    pool.give(a)
    pool.give(b)
    assert.equal(pool.take(16).buffer, a.buffer)
    assert.notEqual(pool.take(16).buffer, b.buffer, 'the second was dropped, not kept')
    const large = pool.take(17)
    assert.equal(large.length, 17)
    pool.give(large)
    pool.give(new Uint8Array(32).subarray(16))
    assert.equal(pool.take(16).buffer.byteLength, 16, 'neither was pooled')
  })

  it('counts the buffers it allocated, not those it gave out again', function () {
    const pool = new ChunkPool(8, 2)
    for (let i = 0; i < 50; i++) pool.give(pool.take(8))
    assert.equal(pool.allocated, 1)
    const held = [pool.take(8), pool.take(8), pool.take(8)]
    assert.equal(pool.allocated, 3)
    for (const chunk of held) pool.give(chunk)
    pool.take(9)
    assert.equal(pool.allocated, 4, 'an oversized chunk gets a buffer of its own')
  })
})
