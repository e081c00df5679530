import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ProviderTrim } from '../../node/buyer/provider-trim.ts'

const MiB = 1024 * 1024

/**
 * Drives a trim with a model of the download: each window, the rate the active set
 * reaches (MiB per ms), split evenly between the active providers.
 */
function run (providers: string[], rateOf: (active: ReadonlySet<string>) => number, windows = 12): { trim: ProviderTrim, log: string[] } {
  let now = 0
  const trim = new ProviderTrim({ providers, windowBytes: 8 * MiB, now })
  const log: string[] = []
  for (let w = 0; w < windows; w++) {
    const active = [...trim.active]
    const ms = 8 / rateOf(trim.active)
    // one chunk of 1 MiB at a time, in turn from each active provider
    for (let i = 0; i < 8; i++) {
      now += ms / 8
      const decision = trim.delivered(active[i % active.length]!, MiB, now)
      if (decision?.rest != null) log.push(`rest ${decision.rest}`)
      if (decision?.recall != null) log.push(`recall ${decision.recall}`)
    }
  }
  return { trim, log }
}

describe('which providers a download keeps', () => {
  it('keeps every provider while each one adds rate (providers limited by their own uplinks)', () => {
    const { trim, log } = run(['a', 'b', 'c'], active => active.size * 10)
    assert.deepEqual([...trim.active].sort(), ['a', 'b', 'c'])
    assert.deepEqual(log, ['rest c', 'recall c'])
    assert.equal(trim.settled, true)
  })

  it('rests providers down to the one the buyer can use when more only compete for its CPU', () => {
    const { trim, log } = run(['a', 'b', 'c'], active => 30 / (1 + 0.3 * (active.size - 1)))
    assert.equal(trim.active.size, 1)
    assert.equal(trim.settled, true)
    assert.equal(log.length, 2)
    assert.ok(log.every(l => l.startsWith('rest ')), log.join(', '))
  })

  it('stops at the best number of providers, whatever it is', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), (n, best) => {
      const providers = Array.from({ length: n }, (_, i) => `p${i}`)
      // the rate grows with each provider up to `best`, then falls
      const rate = (k: number): number => k <= best ? k * 10 : best * 10 - (k - best) * 3
      const { trim } = run(providers, active => Math.max(1, rate(active.size)), 20)
      assert.equal(trim.active.size, Math.min(n, best))
    }))
  })

  it('calls a rested provider back only after two slower windows in a row, not after one', () => {
    // one window of 8 MiB at `ms` per MiB, from whichever providers are active
    const trim = new ProviderTrim({ providers: ['a', 'b', 'c'], windowBytes: 8 * MiB, now: 0 })
    let now = 0
    const window = (msPerMiB: number): Array<{ rest?: string, recall?: string }> => {
      const decisions = []
      const active = [...trim.active]
      for (let i = 0; i < 8; i++) {
        now += msPerMiB
        const d = trim.delivered(active[i % active.length]!, MiB, now)
        if (d != null) decisions.push(d)
      }
      return decisions
    }
    assert.equal(window(10).length, 1, 'the first window rests one')
    const rested = ['a', 'b', 'c'].find(p => !trim.active.has(p))!
    // one window 30% slower (chance, on a busy machine): nothing decided yet
    assert.deepEqual(window(13), [])
    assert.equal(trim.active.has(rested), false)
    // the next is as fast as before: the rest stands, and the next provider is rested
    const next = window(10)
    assert.equal(next.length, 1)
    assert.ok(next[0]!.rest != null && next[0]!.rest !== rested)
    assert.equal(trim.active.size, 1)
    // slower twice in a row: the last one rested comes back and the set is final
    assert.deepEqual(window(13), [])
    const recalled = window(13)
    assert.deepEqual(recalled, [{ recall: next[0]!.rest }])
    assert.equal(trim.active.size, 2)
    assert.equal(trim.settled, true)
  })

  it('rests the provider slowest to serve its ranges, not the one a window happened to hear least from', () => {
    const trim = new ProviderTrim({ providers: ['fast', 'slow', 'mid'], windowBytes: 8 * MiB, now: 0 })
    // whole ranges so far: 4 MiB each, in 20, 60 and 30 ms
    trim.ranged('fast', 4 * MiB, 20)
    trim.ranged('slow', 4 * MiB, 60)
    trim.ranged('mid', 4 * MiB, 30)
    // this window, the fast one's next range had not finished yet: it delivered least
    let decision
    for (const [provider, mib] of [['slow', 4], ['mid', 3], ['fast', 1]] as const) decision = trim.delivered(provider, mib * MiB, 10)
    assert.deepEqual(decision, { rest: 'slow' })
    // without a range from every active provider, the window's shares decide
    const early = new ProviderTrim({ providers: ['a', 'b'], windowBytes: 2 * MiB, now: 0 })
    early.ranged('a', MiB, 5)
    early.delivered('b', MiB, 1)
    assert.deepEqual(early.delivered('b', MiB, 2), { rest: 'a' })
  })

  it('never rests the last provider, and a failed one is dropped from the set', () => {
    const trim = new ProviderTrim({ providers: ['a', 'b'], windowBytes: MiB, now: 0 })
    assert.equal(trim.settled, false, 'two providers: still to be measured')
    trim.remove('b')
    assert.deepEqual([...trim.active], ['a'])
    assert.equal(trim.delivered('a', 2 * MiB, 1), undefined)
    trim.remove('a')
    assert.equal(trim.active.size, 0)
    trim.recallAll(['a', 'b'])
    assert.deepEqual([...trim.active].sort(), ['a', 'b'])
  })

  it('keeps a single provider without measuring', () => {
    const trim = new ProviderTrim({ providers: ['a'], windowBytes: MiB, now: 0 })
    assert.equal(trim.settled, true)
    for (let t = 1; t < 10; t++) assert.equal(trim.delivered('a', MiB, t), undefined)
    assert.deepEqual([...trim.active], ['a'])
  })
})
