// What the process-level escrow tests check after a run: every purchase bought once, holds
// one-to-one with answered purchases, and the escrow's audit.
import assert from 'node:assert/strict'
import { PRICE } from './buyer-processes.ts'
import type { AuditReport } from '../../../node/escrow/ledger.ts'
import type { BuyerResult, PurchaseOutcome } from '../../helpers/escrow-buyer.ts'
import type { HoldJson } from './escrow-process.ts'

export const allOutcomes = (results: BuyerResult[]): PurchaseOutcome[] => results.flatMap(r => r.purchases)

/** Every purchase answered, accepted by the device and completed; repeated answers byte-identical */
export function assertAllBought (results: BuyerResult[], expected: number): void {
  const outcomes = allOutcomes(results)
  assert.equal(outcomes.length, expected)
  const bad = outcomes.filter(o => o.refusals.length > 0 || o.lost != null || o.deviceError != null || !o.accepted || !o.completed || o.answers.length === 0)
  const brief = (o: PurchaseOutcome): unknown => ({ purchase: o.purchase, answers: o.answers.length, refusals: o.refusals, lost: o.lost, deviceError: o.deviceError, accepted: o.accepted, completed: o.completed, retried: o.retried.join(' ') })
  assert.equal(bad.length, 0, `${bad.length} purchases not bought cleanly: ${JSON.stringify(bad.slice(0, 5).map(brief))}`)
  for (const o of outcomes) {
    const distinct = new Set(o.answers.map(a => a.sha256))
    assert.equal(distinct.size, 1, `purchase ${o.purchase} got ${distinct.size} different answers: ${JSON.stringify(o.answers)}`)
    assert.equal(new Set(o.answers.map(a => a.hold)).size, 1)
  }
}

/** Holds one-to-one with purchases, each holding PRICE from its buyer under the hold id the buyer was told */
export function assertHoldsMatch (holds: HoldJson[], results: BuyerResult[]): void {
  const byPurchase = new Map<string, HoldJson>()
  for (const h of holds) {
    assert.equal(byPurchase.has(`${h.device}/${h.purchase}`), false, `two holds for purchase ${h.purchase}`)
    byPurchase.set(`${h.device}/${h.purchase}`, h)
  }
  let answered = 0
  for (const r of results) {
    for (const o of r.purchases) {
      if (o.answers.length === 0) continue
      answered++
      const hold = byPurchase.get(`${r.device}/${o.purchase}`)
      assert.ok(hold != null, `no hold for answered purchase ${o.purchase}`)
      assert.equal(o.answers[0]!.hold, hold.id, `purchase ${o.purchase}: the answer names hold ${o.answers[0]!.hold}, the escrow recorded ${hold.id}`)
      assert.equal(hold.buyer, r.peer)
      assert.equal(hold.amount, PRICE)
      assert.equal(hold.state, 'open')
    }
  }
  assert.equal(holds.length, answered, 'one hold per answered purchase, no other')
}

export function assertAudit (report: AuditReport, deposits: number): void {
  assert.deepEqual(report.violations, [])
  assert.equal(report.ok, true)
  assert.equal(report.deposits, deposits)
  assert.equal(report.withdrawals, 0)
  assert.equal(report.held, report.deposits - report.withdrawals, 'balances + open holds = deposits − withdrawals')
}

export function summary (what: string, purchases: number, kills: number, ms: number): void {
  console.log(`      ${what}: ${purchases} purchases, ${kills} kills, ${(ms / 1000).toFixed(2)} s, ${(purchases / (ms / 1000)).toFixed(1)} purchases/s`)
}
