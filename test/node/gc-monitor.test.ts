// The node's count of V8's collections, in this process: each young and full one V8 runs
// while it is started, none after stop()
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { GcMonitor } from '../../node/gc-monitor.ts'

type Collect = (options?: { type: 'minor' | 'major', execution: 'sync' }) => void

/** V8's collector, as node/gc.ts takes it, with its options: a young collection on demand */
function collector (): Collect {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as Collect
}

describe('GcMonitor', () => {
  it('counts young and full collections while started, and nothing after stop()', async () => {
    const monitor = new GcMonitor()
    const gc = collector()
    const collect = (): void => {
      gc({ type: 'minor', execution: 'sync' })
      gc({ type: 'major', execution: 'sync' })
    }
    // enough live objects that marking them pauses the thread for whole milliseconds
    const live = Array.from({ length: 400_000 }, (_, i) => ({ i }))
    // in the old generation before counting starts: a young collection then stays young
    collect()
    monitor.start()
    try {
      const before = monitor.memory()
      assert.equal(before.fullCollections, 0)
      collect()
      // Node reports collections to observers asynchronously
      await sleep(50)
      const after = monitor.memory()
      assert.ok(after.youngCollections > before.youngCollections, `${after.youngCollections} young collections`)
      assert.ok(after.fullCollections >= 1, `${after.fullCollections} full collections`)
      assert.ok(after.collectionMs >= 1, `${after.collectionMs} ms paused`)
      assert.equal(live.length, 400_000)
      assert.ok(after.rssBytes > after.heapUsedBytes && after.heapUsedBytes > 0)
    } finally {
      monitor.stop()
    }
    const stopped = monitor.memory()
    collect()
    await sleep(50)
    assert.equal(monitor.memory().fullCollections, stopped.fullCollections)
    assert.equal(monitor.memory().youngCollections, stopped.youngCollections)
  })
})
