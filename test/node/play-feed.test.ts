import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { logger } from '@libp2p/logger'
import { FEED_STEP_BYTES, FEED_WAIT_MS, PlayFeed } from '../../node/buyer/play-feed.ts'
import { StoredOrder } from '../../node/buyer/stored-order.ts'

const MiB = 1024 * 1024
const STEP = FEED_STEP_BYTES / MiB

/** a feed over an order of `count` 1 MiB chunks whose device answers after `answerMs` */
function feedOf (count: number, answerMs = 0): { order: StoredOrder, feed: PlayFeed, told: number[] } {
  const order = new StoredOrder()
  order.begin(count, Array.from({ length: count }, (_, i) => i))
  const told: number[] = []
  const feed = new PlayFeed({ order, chunkSize: MiB, log: logger('test:play-feed'), tell: async available => { told.push(available); await sleep(answerMs) } })
  feed.start()
  return { order, feed, told }
}

describe('PlayFeed: what a play behind a download is told', function () {
  it('tells a fast download a step of chunks at a time, and the last chunk at once', async function () {
    const count = 3 * STEP + 2
    const { order, feed, told } = feedOf(count)
    for (let i = 0; i < count; i++) order.add(i)
    await sleep(5)
    feed.stop()
    assert.ok(told.length <= 5, `${told.length} messages for ${count} chunks`)
    assert.equal(told.at(-1), count)
    for (let i = 1; i < told.length; i++) assert.ok(told[i]! > told[i - 1]!, 'counts only grow')
  })

  it('tells a stalled download what is on disk within its short wait', async function () {
    const { order, feed, told } = feedOf(10 * STEP)
    order.add(0)
    order.add(1)
    assert.deepEqual(told, [], 'less than a step waits')
    await sleep(FEED_WAIT_MS * 4)
    assert.deepEqual(told, [2])
    feed.stop()
  })

  it('keeps one message in flight, then tells the latest count', async function () {
    const { order, feed, told } = feedOf(4 * STEP, 40)
    for (let i = 0; i < STEP; i++) order.add(i)
    assert.deepEqual(told, [STEP])
    for (let i = STEP; i < 3 * STEP; i++) order.add(i)
    assert.deepEqual(told, [STEP], 'nothing more while the device answers')
    await sleep(60)
    assert.deepEqual(told, [STEP, 3 * STEP])
    feed.stop()
  })

  it('counts only the gap-free prefix, and says nothing once stopped', async function () {
    const { order, feed, told } = feedOf(3 * STEP)
    for (let i = 1; i < 2 * STEP; i++) order.add(i)
    await sleep(FEED_WAIT_MS * 3)
    assert.deepEqual(told, [], 'chunk 0 is missing')
    order.add(0)
    assert.deepEqual(told, [2 * STEP])
    feed.stop()
    order.add(2 * STEP)
    await sleep(FEED_WAIT_MS * 3)
    assert.deepEqual(told, [2 * STEP])
  })
})
