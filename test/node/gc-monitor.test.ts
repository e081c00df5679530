// The node's count of V8's collections, in this process: young ones as garbage piles up,
// a full one when V8 runs one, none after stop()
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { garbageCollector } from '../../node/gc.ts'
import { GcMonitor } from '../../node/gc-monitor.ts'

/** short-lived objects, enough to fill any young generation several times */
function makeGarbage (): number {
  let kept = 0
  for (let i = 0; i < 200_000; i++) kept += [i, { i }, `${i}`].length
  return kept
}

describe('GcMonitor', () => {
  it('counts young and full collections while started, and nothing after stop()', async () => {
    const monitor = new GcMonitor()
    const collect = garbageCollector()
    assert.ok(collect != null, 'V8 gives its collector at run time')
    monitor.start()
    try {
      const before = monitor.memory()
      assert.equal(before.fullCollections, 0)
      makeGarbage()
      collect()
      // Node reports collections to observers asynchronously
      await sleep(50)
      const after = monitor.memory()
      assert.ok(after.youngCollections > before.youngCollections, `${after.youngCollections} young collections`)
      assert.ok(after.fullCollections >= 1, `${after.fullCollections} full collections`)
      assert.ok(after.collectionMs >= 0)
      assert.ok(after.rssBytes > after.heapUsedBytes && after.heapUsedBytes > 0)
    } finally {
      monitor.stop()
    }
    const stopped = monitor.memory()
    makeGarbage()
    collect()
    await sleep(50)
    assert.equal(monitor.memory().fullCollections, stopped.fullCollections)
    assert.equal(monitor.memory().youngCollections, stopped.youngCollections)
  })
})
