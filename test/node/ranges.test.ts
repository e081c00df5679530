import assert from 'node:assert/strict'
import fc from 'fast-check'
import { splitRanges, takeRange } from '../../node/buyer/ranges.ts'
import type { ChunkRange } from '../../node/buyer/ranges.ts'

/** every chunk index a list of ranges covers, in order */
const covered = (ranges: ChunkRange[]): number[] => ranges.flatMap(r => Array.from({ length: r.count }, (_, i) => r.from + i))

/** ascending, distinct chunk indices below 200 */
const missingList = fc.uniqueArray(fc.nat({ max: 199 }), { maxLength: 120 }).map(a => a.sort((x, y) => x - y))

describe('download ranges', () => {
  it('splits missing chunks into runs without gaps, none longer than the size', () => {
    assert.deepEqual(splitRanges([0, 1, 2, 3, 4, 7, 8, 10], 2), [
      { from: 0, count: 2 }, { from: 2, count: 2 }, { from: 4, count: 1 }, { from: 7, count: 2 }, { from: 10, count: 1 }
    ])
    fc.assert(fc.property(missingList, fc.integer({ min: 1, max: 20 }), (missing, size) => {
      const ranges = splitRanges(missing, size)
      assert.deepEqual(covered(ranges), missing)
      for (const r of ranges) assert.ok(r.count >= 1 && r.count <= size)
    }))
    assert.throws(() => splitRanges([1], 0), RangeError)
    assert.throws(() => splitRanges([1], 1.5), RangeError)
  })

  it('takes adjacent ranges together up to the maximum, and leaves the rest of a split one first', () => {
    const queue = splitRanges([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21], 4)
    assert.deepEqual(takeRange(queue, 6), { from: 0, count: 6 })
    assert.deepEqual(queue[0], { from: 6, count: 2 })
    assert.deepEqual(takeRange(queue, 16), { from: 6, count: 4 })
    assert.deepEqual(takeRange(queue, 16), { from: 20, count: 2 })
    assert.equal(takeRange(queue, 16), undefined)
    // a maximum below the head's size takes the head as it is: small ranges while the trim measures
    const trial = splitRanges([0, 1, 2, 3, 4, 5], 3)
    assert.deepEqual(takeRange(trial, 1), { from: 0, count: 3 })
    assert.equal(trial.length, 1)
  })

  it('hands out every chunk exactly once, whatever the maximum of each take', () => {
    fc.assert(fc.property(missingList, fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 40 }), (missing, size, maxes) => {
      const queue = splitRanges(missing, size)
      const taken: ChunkRange[] = []
      for (let i = 0; queue.length > 0; i++) {
        const max = maxes[i % maxes.length]!
        const range = takeRange(queue, max)!
        assert.ok(range.count <= Math.max(max, size), `took ${range.count} with max ${max}, size ${size}`)
        taken.push(range)
      }
      assert.deepEqual(covered(taken), missing)
    }))
  })
})
