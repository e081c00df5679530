// The byte semaphore that bounds a purchase's chunks in flight, and the setting that sizes it.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ByteBudget } from '../../node/buyer/byte-budget.ts'
import { DEFAULT_INFLIGHT_BYTES, MIN_INFLIGHT_BYTES, parseInflightBytes, validateConfig } from '../../node/config.ts'
import { BadConfigError } from '../../node/errors.ts'

/** Lets every settled promise's callbacks run */
const settle = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('ByteBudget', function () {
  it('never holds more than its capacity, grants in order, and ends with nothing held, for any requests and releases', async function () {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 1000 }),
      fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 30 }),
      fc.infiniteStream(fc.nat()),
      async (capacity, requests, draws) => {
        const budget = new ByteBudget(capacity)
        const granted: number[] = []
        const fitting = requests.map(n => Math.min(n, capacity))
        const waits = fitting.map(async (n, i) => { await budget.reserve(n); granted.push(i) })
        const it = draws[Symbol.iterator]()
        const released = new Set<number>()
        while (released.size < fitting.length) {
          await settle()
          assert.ok(budget.inUse <= capacity, `${budget.inUse} held of ${capacity}`)
          // requests are granted in the order asked
          assert.deepEqual(granted, [...granted].sort((a, b) => a - b))
          const holding = granted.filter(i => !released.has(i))
          assert.ok(holding.length > 0, 'nothing granted while every reservation waits')
          const i = holding[it.next().value! % holding.length]!
          budget.release(fitting[i]!)
          released.add(i)
        }
        await Promise.all(waits)
        assert.equal(budget.inUse, 0)
        assert.ok(budget.peak <= capacity && budget.peak >= Math.max(...fitting))
      }
    ), { numRuns: 200 })
  })

  it('grants a request larger than the whole budget alone, once nothing else is held', async function () {
    const budget = new ByteBudget(100)
    await budget.reserve(60)
    let big = false
    const waiting = budget.reserve(250).then(() => { big = true })
    await settle()
    assert.equal(big, false)
    budget.release(60)
    await waiting
    assert.equal(budget.inUse, 250)
  })

  it('stops waiting when its signal aborts, and lets the requests behind it through', async function () {
    const budget = new ByteBudget(100)
    await budget.reserve(90)
    const stop = new AbortController()
    const large = budget.reserve(50, stop.signal)
    let small = false
    const behind = budget.reserve(10).then(() => { small = true })
    await settle()
    assert.equal(small, false, 'a later request waits behind an earlier one')
    stop.abort(new Error('stopped'))
    await assert.rejects(large, /stopped/)
    await behind
    assert.equal(small, true)
    assert.equal(budget.inUse, 100)
    await assert.rejects(budget.reserve(1, AbortSignal.abort()))
  })

  it('refuses a capacity that is not a positive whole number, and a release of more than is held', function () {
    assert.throws(() => new ByteBudget(0), RangeError)
    assert.throws(() => new ByteBudget(1.5), RangeError)
    assert.throws(() => { new ByteBudget(10).release(1) }, RangeError)
  })
})

describe('the buyer.inflightBytes setting', function () {
  it('takes a whole number of at least 64 KiB, from the file or a flag', function () {
    assert.equal(parseInflightBytes(MIN_INFLIGHT_BYTES, 'x'), MIN_INFLIGHT_BYTES)
    assert.equal(parseInflightBytes('1048576', '--inflight-bytes'), 1048576)
    assert.equal(validateConfig({ v: 1, buyer: { inflightBytes: DEFAULT_INFLIGHT_BYTES } }, 'config.json').buyer?.inflightBytes, DEFAULT_INFLIGHT_BYTES)
    assert.equal(DEFAULT_INFLIGHT_BYTES, 4 * 1024 * 1024)
  })

  it('refuses anything else with a BadConfigError naming the setting', function () {
    for (const bad of [MIN_INFLIGHT_BYTES - 1, 0, -5, 1.5e6 + 0.5, 'lots', '12 MiB']) {
      assert.throws(() => parseInflightBytes(bad, '--inflight-bytes'), (err: unknown) => err instanceof BadConfigError && /--inflight-bytes/.test(err.message))
    }
    assert.throws(() => validateConfig({ v: 1, buyer: { inflightBytes: 1000 } }, 'config.json'), /config.json: buyer.inflightBytes/)
    assert.throws(() => validateConfig({ v: 1, buyer: { inflightBytes: '1048576' } }, 'config.json'), BadConfigError)
    assert.throws(() => validateConfig({ v: 1, buyer: { other: 1 } }, 'config.json'), /buyer.other is not a setting/)
    assert.throws(() => validateConfig({ v: 1, buyer: 5 }, 'config.json'), /buyer must be an object/)
  })
})
