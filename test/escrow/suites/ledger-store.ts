// The ledger store itself on one engine: refusals that write nothing, group commits,
// 200 concurrent holds with raced ends, reservations and their expiry.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { HoldCommitter } from '../../../node/escrow/commits.ts'
import { MAX_AMOUNT } from '../../../node/escrow/ledger-store.ts'
import { PgLedger } from '../../../node/escrow/pg-ledger.ts'
import { connectionFields } from '../../../node/escrow/pg-pool.ts'
import { validateLedgerUrl } from '../../../node/escrow/state.ts'
import { SqliteLedger } from '../../../node/escrow/sqlite-ledger.ts'
import { bytes, newHold, newReservation, snapshot } from './ledger-fixtures.ts'
import { sharedPostgres } from './shared-postgres.ts'
import type { LedgerEngine, LedgerStore } from '../../../node/escrow/ledger-store.ts'
import type { PgServer } from '../../helpers/postgres.ts'

const log = logger('keyfair:test:ledger')

export function ledgerStoreSuite (engine: LedgerEngine): void {
  describe('the ledger store', function () {
    this.timeout(240_000)
    let server: PgServer | undefined
    let dir: string | undefined
    const stores: LedgerStore[] = []

    before(async function () {
      if (engine === 'postgres') server = await sharedPostgres(this)
      dir = await mkdtemp(join(tmpdir(), 'keyfair-ledger-'))
    })

    after(async function () {
      for (const store of stores.splice(0)) await store.close().catch(() => {})
      if (dir != null) await rm(dir, { recursive: true, force: true })
    })

    /** a fresh, empty ledger on this engine (a database of its own on PostgreSQL) */
    const openStore = async (name: string): Promise<LedgerStore> => {
      const store = engine === 'sqlite'
        ? SqliteLedger.open(join(dir!, `${name}.db`))
        : await PgLedger.open({ url: await server!.createDatabase(`store_${name}`), password: server!.password }, log)
      stores.push(store)
      return store
    }

    it('refuses bad money moves with their codes, writing nothing; amounts up to 2^53 − 1 stay exact', async function () {
      const ledger = await openStore('refusals')
      assert.equal(ledger.engine, engine)
      assert.equal(await ledger.deposit('alice', 100, 'wire'), 100)
      const before = await snapshot(ledger)
      await assert.rejects(ledger.withdraw('alice', 101), { code: 'ERR_INSUFFICIENT_FUNDS' })
      await assert.rejects(ledger.withdraw('nobody', 1), { code: 'ERR_INSUFFICIENT_FUNDS' })
      await assert.rejects(ledger.deposit('alice', -1), { code: 'ERR_AMOUNT' })
      await assert.rejects(ledger.deposit('alice', 1.5), { code: 'ERR_AMOUNT' })
      await assert.rejects(ledger.deposit('alice', MAX_AMOUNT), { code: 'ERR_AMOUNT' })
      await assert.rejects(ledger.openHold(newHold('alice', 101)), { code: 'ERR_INSUFFICIENT_FUNDS' })
      await assert.rejects(ledger.endHold('no-such-hold', 'release', 'receipt'), { code: 'ERR_UNKNOWN_HOLD' })
      assert.deepEqual(await snapshot(ledger), before, 'nothing written by any refusal')

      // the world account is −(deposits − withdrawals): it too stays within −(2^53 − 1)
      assert.equal(await ledger.deposit('whale', MAX_AMOUNT - 100), MAX_AMOUNT - 100)
      assert.equal(await ledger.balance('whale'), MAX_AMOUNT - 100)
      assert.equal(await ledger.balance('@world'), -MAX_AMOUNT)
      await assert.rejects(ledger.deposit('minnow', 1), { code: 'ERR_AMOUNT' })
      assert.equal(await ledger.withdraw('whale', MAX_AMOUNT - 101), 1)
      assert.deepEqual((await ledger.audit()).violations, [])
    })

    it('commits a group in one transaction: refused holds write nothing, a repeated request replays its answer', async function () {
      const ledger = await openStore('group')
      await ledger.deposit('alice', 10)
      await ledger.deposit('bob', 3)
      const committer = new HoldCommitter(ledger)
      const a1 = newHold('alice', 4)
      const group = [
        a1,
        newHold('alice', 4),
        newHold('alice', 4), // 2 left: insufficient funds
        newHold('bob', 3),
        { ...a1, id: randomBytes(16).toString('hex'), answer: bytes(32) }, // the same request again: its stored hold
        newHold('alice', 1, { purchase: a1.purchase }) // another request under a used purchase id
      ]
      const outcomes = await Promise.allSettled(group.map(async h => committer.open(h)))
      assert.deepEqual(committer.stats, { commits: 1, holds: 6, largest: 6 })
      const codes = outcomes.map(o => o.status === 'fulfilled' ? (o.value.charged ? 'charged' : 'replayed') : (o.reason as { code: string }).code)
      assert.deepEqual(codes, ['charged', 'charged', 'ERR_INSUFFICIENT_FUNDS', 'charged', 'replayed', 'ERR_PURCHASE_ID_USED'])
      const replay = outcomes[4]!
      assert.ok(replay.status === 'fulfilled')
      assert.equal(replay.value.hold.id, a1.id)
      assert.deepEqual(replay.value.hold.answer, a1.answer, 'the replay gets the stored answer')
      assert.deepEqual(await ledger.answerByRequest(a1.request), a1.answer)
      assert.deepEqual((await ledger.holdByRequest(a1.request))?.requestBytes, a1.requestBytes)
      assert.equal(await ledger.balance('alice'), 2)
      assert.equal(await ledger.balance('bob'), 0)
      assert.equal((await ledger.holds({ limit: 100 })).length, 3)
      assert.equal((await ledger.postings({ kind: 'hold', limit: 100 })).length, 6, 'two postings per charged hold, none for the refused')
      assert.deepEqual(await ledger.openHoldBuyers(), new Map([['alice', 2], ['bob', 1]]))
      // a request's state in one read: its stored answer, the balance, the device's purchase id
      assert.deepEqual(await ledger.requestState(a1.request, 'alice', { device: a1.device, purchase: a1.purchase }), { answer: a1.answer, balance: 2, used: true })
      assert.deepEqual(await ledger.requestState('unpaid', 'alice', { device: 'device-2', purchase: a1.purchase }), { balance: 2, used: false })
      assert.deepEqual(await ledger.requestState('unpaid', 'nobody'), { balance: 0 })
      assert.deepEqual((await ledger.audit()).violations, [])
    })

    it('charges exactly the funds under 200 concurrent holds, and ends each of 50 raced holds exactly once', async function () {
      const ledger = await openStore('races')
      const PRICE = 3
      await ledger.deposit('racer', 100 * PRICE)
      // 200 holds, each its own transaction, all at once: half of them find the funds gone
      const shared = newHold('racer', PRICE)
      const raced = [...Array.from({ length: 199 }, () => newHold('racer', PRICE)), shared]
      // and one purchase id claimed by two different requests at once
      const rival = newHold('racer', PRICE, { device: shared.device, purchase: shared.purchase })
      const results = await Promise.allSettled([...raced, rival].map(async h => ledger.openHold(h)))
      const charged = results.filter(r => r.status === 'fulfilled' && r.value.charged).length
      const codes = results.flatMap(r => r.status === 'rejected' ? [(r.reason as { code: string }).code] : [])
      assert.equal(charged, 100, 'exactly as many holds as the funds pay for')
      assert.equal(codes.filter(c => c === 'ERR_INSUFFICIENT_FUNDS').length + codes.filter(c => c === 'ERR_PURCHASE_ID_USED').length, codes.length, codes.join(' '))
      assert.ok(codes.filter(c => c === 'ERR_INSUFFICIENT_FUNDS').length >= 99)
      assert.equal((await ledger.holds({ limit: 1000 })).filter(h => h.purchase === shared.purchase).length <= 1, true)
      assert.equal(await ledger.balance('racer'), 0)

      // release and refund raced on the same holds: each ends once, by one of them
      const open = (await ledger.holds({ state: 'open', limit: 50 }))
      const ends = await Promise.all(open.flatMap(h => [ledger.endHold(h.id, 'release', 'receipt'), ledger.endHold(h.id, 'refund', 'dispute'), ledger.endHold(h.id, 'release', 'again')]))
      for (let i = 0; i < open.length; i++) assert.equal(ends.slice(3 * i, 3 * i + 3).filter(e => e.ended).length, 1, `hold ${open[i]!.id} ended once`)
      const refunded = ends.filter(e => e.ended && e.hold.state === 'refunded').length
      assert.equal(await ledger.balance('racer'), refunded * PRICE)
      assert.equal(await ledger.balance('seller'), (50 - refunded) * PRICE)
      // expiry ends only what is due, once
      const due = await ledger.expireDue(Date.now() + 120_000)
      assert.equal(due.length, 50)
      assert.equal((await ledger.expireDue(Date.now() + 120_000)).length, 0)
      const report = await ledger.audit()
      assert.deepEqual(report.violations, [])
      assert.deepEqual(report.holds, { open: 0, released: 100 - refunded, refunded })
      assert.equal(report.held, 100 * PRICE)
      // a seller's sales: its holds only, each in the state it ended in
      const other = newHold('racer', PRICE, { seller: 'other-seller' })
      await ledger.deposit('racer', PRICE)
      await ledger.openHold(other)
      const sales = await ledger.holds({ seller: 'seller', limit: 1000 })
      assert.equal(sales.length, 100)
      assert.ok(sales.every(h => h.seller === 'seller'))
      assert.equal(sales.filter(h => h.state === 'released').length, 100 - refunded)
      assert.deepEqual((await ledger.holds({ seller: 'other-seller' })).map(h => h.id), [other.id])
      assert.deepEqual((await ledger.holds({ seller: 'seller', state: 'refunded', limit: 1000 })).length, refunded)
    })

    if (engine === 'postgres') {
      it('reaches a server on the same machine through its Unix socket: the socket directory is the URL\'s host', async function () {
        await server!.createDatabase('store_socket')
        const url = validateLedgerUrl(`postgres://${server!.user}@${encodeURIComponent(server!.dir)}:${server!.port}/store_socket`)
        assert.deepEqual(connectionFields(url), { host: server!.dir, port: server!.port, user: server!.user, database: 'store_socket' })
        // no password: the socket is trusted (it is reachable only by the server's owner)
        const ledger = await PgLedger.open({ url }, log)
        stores.push(ledger)
        assert.equal(await ledger.deposit('sam', 5), 5)
        await ledger.openHold(newHold('sam', 2))
        assert.equal(await ledger.balance('sam'), 3)
        assert.deepEqual((await ledger.audit()).violations, [])
      })
    }

    it('reserves before answering: the answer takes the reservation (one charge), a retry is not charged again', async function () {
      const ledger = await openStore('reserve_answer')
      await ledger.deposit('rita', 10)
      const hold = newHold('rita', 4)
      const reservation = newReservation(hold)
      const first = await ledger.reserve(reservation)
      assert.equal(first.charged, true)
      assert.equal(first.reservation.state, 'open')
      assert.equal(await ledger.balance('rita'), 6, 'the price left the balance at the reservation')
      assert.deepEqual((await ledger.audit()).reserved, { open: 1, amount: 4 })
      // the same reservation asked again (a lost answer): nothing moves
      const again = await ledger.reserve({ ...reservation, id: randomBytes(16).toString('hex') })
      assert.equal(again.charged, false)
      assert.equal(again.reservation.id, reservation.id)
      // another amount under the same purchase id is refused
      await assert.rejects(ledger.reserve({ ...newReservation(hold), amount: 5 }), { code: 'ERR_PURCHASE_ID_USED' })
      const opened = await ledger.openHold(hold)
      assert.equal(opened.charged, true)
      assert.equal(await ledger.balance('rita'), 6, 'the answer took the reserved price: no second charge')
      const [after] = await ledger.reservations({ buyer: 'rita' })
      assert.equal(after?.state, 'answered')
      assert.equal(after?.hold, hold.id)
      // the same request again replays, still one charge; a reservation of an answered purchase is refused
      assert.equal((await ledger.openHold(hold)).charged, false)
      await assert.rejects(ledger.reserve(newReservation(hold)), { code: 'ERR_ALREADY_ANSWERED' })
      const report = await ledger.audit()
      assert.deepEqual(report.violations, [])
      assert.deepEqual(report.reserved, { open: 0, amount: 0 })
      assert.deepEqual(report.holds, { open: 1, released: 0, refunded: 0 })
      assert.equal(report.held, 10)
      // an answered hold ends as before: to the seller on a receipt
      assert.equal((await ledger.endHold(hold.id, 'release', 'receipt')).ended, true)
      assert.equal(await ledger.balance('seller'), 4)
    })

    it('cancels an unanswered reservation back to the buyer, refuses to cancel an answered one, refuses a reservation beyond the balance', async function () {
      const ledger = await openStore('reserve_cancel')
      await ledger.deposit('carl', 5)
      const before = await snapshot(ledger)
      const short = await ledger.reserve(newReservation(newHold('carl', 6))).then(() => undefined, (err: { code: string, details?: unknown }) => err)
      assert.equal(short?.code, 'ERR_INSUFFICIENT_FUNDS')
      assert.deepEqual(short?.details, { balance: 5, amount: 6 }, 'the refusal carries the balance and the price')
      assert.deepEqual(await snapshot(ledger), before, 'a refused reservation writes nothing')

      const cancelled = newHold('carl', 3)
      await ledger.reserve(newReservation(cancelled))
      assert.equal(await ledger.balance('carl'), 2)
      const ended = await ledger.cancelReservation('carl', cancelled.purchase, 'cancelled by the buyer')
      assert.equal(ended.ended, true)
      assert.equal(ended.reservation?.state, 'cancelled')
      assert.equal(await ledger.balance('carl'), 5, 'refunded in full')
      assert.equal((await ledger.cancelReservation('carl', cancelled.purchase, 'again')).ended, false, 'cancelled once')
      // another buyer cannot cancel it (there is nothing of theirs to cancel)
      const answered = newHold('carl', 2)
      await ledger.reserve(newReservation(answered))
      assert.equal((await ledger.cancelReservation('mallory', answered.purchase, 'not mine')).ended, false)
      await ledger.openHold(answered)
      await assert.rejects(ledger.cancelReservation('carl', answered.purchase, 'too late'), { code: 'ERR_ALREADY_ANSWERED' })
      assert.equal((await ledger.hold(answered.id))?.state, 'open', 'the answered hold stays open')
      // a purchase cancelled here may be reserved again (the buy run again), and answered
      const retried = await ledger.reserve(newReservation(cancelled))
      assert.equal(retried.charged, true)
      await ledger.openHold(cancelled)
      assert.equal(await ledger.balance('carl'), 0)
      const report = await ledger.audit()
      assert.deepEqual(report.violations, [])
      assert.equal(report.held, 5)
      assert.deepEqual(report.holds, { open: 2, released: 0, refunded: 0 })
      assert.equal(await ledger.accounts().then(a => a.map(x => x.account).join()), 'carl', 'reservation accounts are no customer accounts')
    })

    it('expires reservations not followed by a request back to the buyer, once, leaving answered holds alone', async function () {
      const ledger = await openStore('reserve_expiry')
      await ledger.deposit('eve', 9)
      const now = Date.now()
      const stale = newHold('eve', 3)
      const fresh = newHold('eve', 3)
      const answered = newHold('eve', 3)
      await ledger.reserve(newReservation(stale, { expiresAt: now + 1000 }))
      await ledger.reserve(newReservation(fresh, { expiresAt: now + 60_000 }))
      await ledger.reserve(newReservation(answered, { expiresAt: now + 1000 }))
      await ledger.openHold(answered)
      assert.equal(await ledger.balance('eve'), 0)
      const expired = await ledger.expireReservations(now + 2000)
      assert.deepEqual(expired.map(r => r.purchase), [stale.purchase])
      assert.equal(expired[0]?.state, 'expired')
      assert.equal((await ledger.expireReservations(now + 2000)).length, 0, 'expired once')
      assert.equal(await ledger.balance('eve'), 3, 'the expired reservation went back to the buyer')
      assert.equal(await ledger.balance('seller'), 0, 'nothing to the seller')
      assert.equal((await ledger.hold(answered.id))?.state, 'open')
      // the fresh one is answered after the sweep: one charge
      await ledger.openHold(fresh)
      assert.equal(await ledger.balance('eve'), 3)
      const report = await ledger.audit()
      assert.deepEqual(report.violations, [])
      assert.deepEqual(report.reserved, { open: 0, amount: 0 })
      assert.equal(report.held, 9)
    })
  })
}
