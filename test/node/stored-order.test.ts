// The gap-free prefix a following play may read, whatever order chunks arrive in.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { StoredOrder } from '../../node/buyer/stored-order.ts'

describe('StoredOrder', function () {
  it('reports exactly the gap-free prefix, only forward, for any arrival order and any chunks already on disk', function () {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 40 }).chain(n => fc.tuple(fc.constant(n), fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i), { minLength: 0, maxLength: n }), fc.infiniteStream(fc.nat()))),
      ([n, onDisk, draws]) => {
        const order = new StoredOrder()
        const told: number[] = []
        order.onAdvance = c => told.push(c)
        const missing = Array.from({ length: n }, (_, i) => i).filter(i => !onDisk.includes(i))
        order.begin(n, missing)
        // the missing chunks arrive in a random order
        const arriving = [...missing]
        const it = draws[Symbol.iterator]()
        for (let k = arriving.length - 1; k > 0; k--) {
          const j = it.next().value! % (k + 1);
          [arriving[k], arriving[j]] = [arriving[j]!, arriving[k]!]
        }
        const have = new Set(onDisk)
        for (const i of arriving) {
          order.add(i)
          have.add(i)
          let prefix = 0
          while (have.has(prefix)) prefix++
          assert.equal(order.contiguous, prefix)
        }
        assert.equal(order.contiguous, n)
        assert.deepEqual(told, [...told].sort((a, b) => a - b))
        assert.equal(new Set(told).size, told.length, 'each advance told once')
        if (n > 0) assert.equal(told.at(-1), n)
      }))
  })

  it('marks the first stored chunk, and ignores chunks outside the content', async function () {
    const order = new StoredOrder()
    let first = false
    void order.firstStored.then(() => { first = true })
    order.add(0) // before begin: ignored
    order.begin(3, [0, 1, 2])
    await Promise.resolve()
    assert.equal(first, false)
    order.add(7)
    order.add(-1)
    assert.equal(order.contiguous, 0)
    order.add(1)
    await order.firstStored
    assert.equal(order.contiguous, 0)
    order.add(0)
    assert.equal(order.contiguous, 2)
  })
})
