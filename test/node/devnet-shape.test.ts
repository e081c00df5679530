// The shape `keyfair devnet` runs: flags, else the shape recorded in its directory, else
// the defaults; a flag out of bounds or against the recorded shape is a usage error.
import assert from 'node:assert/strict'
import { DEFAULT_SHAPE, resolveShape } from '../../node/devnet/shape.ts'

describe('devnet shape', function () {
  it('defaults to 2-of-3 escrows, one seller, one buyer', function () {
    assert.deepEqual(resolveShape({}), { escrows: 3, threshold: 2, sellers: 1, buyers: 1 })
  })

  it('takes a majority threshold when only the number of escrows is given', function () {
    assert.equal(resolveShape({ escrows: '5' }).threshold, 3)
    assert.equal(resolveShape({ escrows: '1' }).threshold, 1)
    assert.equal(resolveShape({ escrows: '5', threshold: '5' }).threshold, 5)
  })

  it('refuses numbers out of bounds and a threshold above the escrows', function () {
    for (const flags of [{ escrows: '0' }, { escrows: 'three' }, { buyers: '-1' }, { sellers: '99' }, { escrows: '2', threshold: '3' }]) {
      assert.throws(() => resolveShape(flags), { code: 'ERR_USAGE' }, JSON.stringify(flags))
    }
  })

  it('runs a recorded devnet in its recorded shape, and refuses flags that differ from it', function () {
    const recorded = { escrows: 5, threshold: 4, sellers: 2, buyers: 3 }
    assert.deepEqual(resolveShape({}, recorded), recorded)
    assert.deepEqual(resolveShape({ escrows: '5' }, recorded), recorded)
    assert.throws(() => resolveShape({ buyers: '1' }, recorded), { code: 'ERR_USAGE', message: /4-of-5 escrows, 2 seller\(s\), 3 buyer\(s\)/ })
    assert.notDeepEqual(resolveShape({}), recorded)
    assert.deepEqual(resolveShape({}), DEFAULT_SHAPE)
  })
})
