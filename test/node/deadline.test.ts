import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Deadline } from '../../protocols/toolkit/index.ts'

describe('Deadline: a time limit on one wait, over when the wait is', function () {
  it('aborts its signal with a TimeoutError once the time runs out', async function () {
    const deadline = new Deadline(30)
    assert.equal(deadline.signal.aborted, false)
    await sleep(80)
    assert.equal(deadline.signal.aborted, true)
    assert.equal(deadline.timedOut, true)
    assert.equal((deadline.signal.reason as DOMException).name, 'TimeoutError')
  })

  it('never fires once cleared, and lets go of the caller\'s signal', async function () {
    const caller = new AbortController()
    const deadline = new Deadline(30, caller.signal)
    assert.equal(getEventListeners(caller.signal, 'abort').length, 1)
    deadline.clear()
    assert.equal(getEventListeners(caller.signal, 'abort').length, 0)
    await sleep(80)
    caller.abort(new Error('later'))
    assert.equal(deadline.signal.aborted, false)
    assert.equal(deadline.timedOut, false)
  })

  it('aborts with the caller\'s reason when the caller aborts first, without timing out', async function () {
    const caller = new AbortController()
    const deadline = new Deadline(30, caller.signal)
    const reason = new Error('stopped by the caller')
    caller.abort(reason)
    assert.equal(deadline.signal.reason, reason)
    await sleep(80)
    assert.equal(deadline.timedOut, false)
  })

  it('starts aborted when the caller\'s signal already is, and never times out after', async function () {
    const reason = new Error('already stopped')
    const deadline = new Deadline(30, AbortSignal.abort(reason))
    assert.equal(deadline.signal.aborted, true)
    assert.equal(deadline.signal.reason, reason)
    await sleep(80)
    assert.equal(deadline.timedOut, false)
  })
})
