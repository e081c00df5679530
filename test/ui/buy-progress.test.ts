// The store's view of a purchase in progress, folded from the node's progress events: bytes,
// rate and time left of the download, each escrow's latest state, dropped providers.
import assert from 'node:assert/strict'
import { foldBuy, formatEta, startView } from '../../ui/src/pages/buy-progress.ts'
import type { BuyEvent, BuyView } from '../../ui/src/pages/buy-progress.ts'

function fold (events: Array<[number, BuyEvent]>): BuyView {
  return events.reduce((view, [at, event]) => foldBuy(view, event, at), startView(0))
}

describe('web UI purchase progress', function () {
  it('gives the download its rate and time left from the bytes so far', function () {
    const view = fold([
      [1000, { phase: 'download', bytes: 1_000_000, total: 4_000_000, providers: 2 }],
      [2000, { phase: 'download', bytes: 2_000_000, total: 4_000_000, providers: 3 }]
    ])
    assert.equal(view.bytes, 2_000_000)
    assert.equal(view.providers, 3)
    assert.equal(view.rate, 1_000_000)
    assert.equal(view.eta, 2)
    assert.equal(view.events, 2)
    assert.equal(formatEta(view.eta), '2 s')
    assert.equal(formatEta(125), '2 min 5 s')
    assert.equal(formatEta(undefined), '—')
  })

  it('keeps each escrow\'s latest state, in offer order, with its refusal code', function () {
    const view = fold([
      [10, { phase: 'escrow', j: 2, peer: 'B', state: 'reserved', have: 0, need: 2 }],
      [20, { phase: 'escrow', j: 1, peer: 'A', state: 'reserved', have: 0, need: 2 }],
      [30, { phase: 'escrow', j: 2, peer: 'B', state: 'refused', code: 'ERR_CERT_REVOKED', have: 0, need: 2 }],
      [40, { phase: 'provider-dropped', provider: 'P', reason: 'bad chunk' }],
      [50, { phase: 'licence', bound: true }]
    ])
    assert.deepEqual(view.escrows.map(e => [e.j, e.state, e.code]), [[1, 'reserved', undefined], [2, 'refused', 'ERR_CERT_REVOKED']])
    assert.deepEqual(view.dropped, [{ provider: 'P', reason: 'bad chunk' }])
    assert.equal(view.bound, true)
    assert.equal(view.eta, undefined, 'no time left is guessed before any byte arrives')
  })
})
