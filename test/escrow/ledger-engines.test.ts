// The escrow's ledger on both engines, SQLite and PostgreSQL, from one set of tests: the
// ledger store itself under concurrent transactions, then the escrow over real libp2p
// (every refusal leaves the ledger as it was, 200 purchases at once with double spends,
// receipt, disputes, fraud refund, expiry, audit). PostgreSQL runs as a throwaway server
// (test/helpers/postgres.ts); without its binaries those tests are skipped, except in CI.
import assert from 'node:assert/strict'
import { X509Certificate, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf } from '../../device/objects/market.ts'
import { signWithDeviceKey, signedId } from '../../device/objects/signed.ts'
import { HoldCommitter } from '../../node/escrow/commits.ts'
import { MAX_AMOUNT } from '../../node/escrow/ledger-store.ts'
import { PgLedger } from '../../node/escrow/pg-ledger.ts'
import { SqliteLedger } from '../../node/escrow/sqlite-ledger.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { requestSettle } from '../../protocols/escrow/settle.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import { requestCancelReservation, requestReserve } from '../../protocols/escrow/reserve.ts'
import type { ReserveRequest } from '../../protocols/escrow/reserve.ts'
import { RemoteError } from '../../protocols/errors.ts'
import { PASSPHRASE, createWorld } from '../helpers/escrow-world.ts'
import { encryptWork } from '../helpers/market.ts'
import { waitFor } from '../helpers/nodes.ts'
import { requirePostgres, startPostgres } from '../helpers/postgres.ts'
import type { LedgerEngine, LedgerStore, NewHold, NewReservation } from '../../node/escrow/ledger-store.ts'
import type { EscrowSettings } from '../../node/escrow/state.ts'
import type { KeyfairNode } from '../../node/keyfair-node.ts'
import type { EscrowRole } from '../../node/roles/escrow.ts'
import type { Offer, UnblindRequest } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { KeyStore } from '../../device/store/keystore.ts'
import type { SoftDevice } from '../../device/soft-device.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'
import type { PgServer } from '../helpers/postgres.ts'

const log = logger('keyfair:test:ledger')
const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

function newHold (buyer: string, amount: number, over: Partial<NewHold> = {}): NewHold {
  const now = Date.now()
  return {
    id: randomBytes(16).toString('hex'),
    device: 'device-1',
    purchase: randomBytes(16).toString('hex'),
    j: 1,
    buyer,
    seller: 'seller',
    amount,
    offer: 'offer',
    request: randomBytes(16).toString('hex'),
    requestBytes: bytes(40),
    answer: bytes(64),
    createdAt: now,
    expiresAt: now + 60_000,
    ...over
  }
}

/** the reservation of a hold's purchase, before its request */
function newReservation (hold: NewHold, over: Partial<NewReservation> = {}): NewReservation {
  return { id: randomBytes(16).toString('hex'), device: hold.device, purchase: hold.purchase, j: hold.j, buyer: hold.buyer, seller: hold.seller, amount: hold.amount, offer: hold.offer, createdAt: hold.createdAt, expiresAt: hold.createdAt + 120_000, ...over }
}

/** everything a ledger holds, to show a refusal changed nothing */
async function snapshot (ledger: LedgerStore): Promise<unknown> {
  return { accounts: await ledger.accounts(), postings: await ledger.postings({ limit: 100_000 }), holds: await ledger.holds({ limit: 100_000 }), audit: await ledger.audit() }
}

for (const engine of ['sqlite', 'postgres'] as const satisfies readonly LedgerEngine[]) {
  describe(`escrow ledger on ${engine}`, function () {
    this.timeout(240_000)
    let server: PgServer | undefined
    let world: World
    let work: TestWork
    const stores: LedgerStore[] = []

    before(async function () {
      if (engine === 'postgres') server = await startPostgres(requirePostgres(this))
      world = await createWorld()
      const plain = join(world.dir, 'work.bin')
      await writeFile(plain, randomBytes(10_000))
      work = await encryptWork(world.dir, 'work', plain)
    })

    after(async function () {
      for (const store of stores.splice(0)) await store.close().catch(() => {})
      await world?.stop()
      await server?.destroy()
    })

    /** a fresh, empty ledger on this engine */
    const openStore = async (name: string): Promise<LedgerStore> => {
      const store = engine === 'sqlite'
        ? SqliteLedger.open(join(world.dir, `${name}.db`))
        : await PgLedger.open({ url: await server!.createDatabase(name), password: server!.password }, log)
      stores.push(store)
      return store
    }

    /** escrow settings putting its ledger on this engine (a database of its own on PostgreSQL) */
    const escrowSettings = async (name: string, settings: Partial<EscrowSettings> = {}): Promise<Partial<EscrowSettings>> => engine === 'sqlite'
      ? settings
      : { ...settings, ledger: await server!.createDatabase(name.replace(/-/g, '_')), ledgerPasswordFile: server!.passwordFile }

    describe('the ledger store', function () {
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
      })

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

    describe('the escrow over libp2p', function () {
      let buyer: KeyfairNode
      let escrow: { node: KeyfairNode, role: EscrowRole, peer: string, n: Uint8Array }
      const addrOf = (e: { node: KeyfairNode }): ReturnType<typeof multiaddr> => multiaddr(e.node.status().addresses[0]!)

      before(async function () {
        buyer = await world.startNode('buyer', [])
        escrow = await world.startEscrow('escrow-main', await escrowSettings('escrow-main'))
      })

      const offerFor = async (escrows: Array<{ peer: string, n: Uint8Array }>, options: { price?: number, expiry?: number, currency?: string } = {}): Promise<Signed<Offer>> => createOffer({
        sellerKey: world.sellerKey,
        terms: { content: contentIdOf(work.manifest), price: options.price ?? 100, currency: options.currency ?? 'EUR', escrows, t: 1, expiry: options.expiry ?? Date.now() + 3_600_000 },
        title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
      })

      /** A device-signed request with some fields changed, signed again by the same device */
      async function forge (d: { store: KeyStore, device: SoftDevice }, request: Uint8Array, change: (body: Record<string, unknown>) => void): Promise<Uint8Array> {
        const signed = decodeObject(request) as Signed<Record<string, unknown>>
        const body = { ...signed.body }
        change(body)
        const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
        const der = new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)
        return encodeObject(signWithDeviceKey('unblind-request', body, signingKey, der))
      }

      it('uses the engine it was configured with', async function () {
        assert.equal(escrow.role.ledger.engine, engine)
      })

      it('refuses each bad request with its code and leaves the ledger unchanged', async function () {
        const d = await world.device('refusals')
        const buyerId = buyer.status().peerId
        await escrow.role.ledger.deposit(buyerId, 250)
        const offer = await offerFor([{ peer: escrow.peer, n: escrow.n }])
        const p = await d.device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: buyerId })
        const { request } = await d.device.requestShare({ purchase: p.purchase, j: 1 })
        const expired = await offerFor([{ peer: escrow.peer, n: escrow.n }], { expiry: Date.now() - 1000 })
        const dollars = await offerFor([{ peer: escrow.peer, n: escrow.n }], { currency: 'USD' })
        const thief = await world.startNode('thief', [])
        const send = async (bytes: Uint8Array, from: KeyfairNode = buyer): Promise<Uint8Array> => requestUnblind({ connectionManager: from.streams }, addrOf(escrow), bytes)
        const before = await snapshot(escrow.role.ledger)
        const cases: Array<[string, () => Promise<unknown>]> = [
          ['ERR_BAD_OBJECT', async () => send(await forge(d, request, b => { b.j = 2 }))],
          ['ERR_WRONG_AMOUNT', async () => send(await forge(d, request, b => { b.amount = 1 }))],
          ['ERR_BAD_BLINDED', async () => send(await forge(d, request, b => { b.b = new Uint8Array(escrow.n.length) }))],
          ['ERR_CLOCK_WINDOW', async () => send(await forge(d, request, b => { b.at = Date.now() - 10 * 60_000 }))],
          ['ERR_OFFER_EXPIRED', async () => send(await forge(d, request, b => { b.offer = expired }))],
          ['ERR_CURRENCY', async () => send(await forge(d, request, b => { b.offer = dollars }))],
          ['ERR_NOT_BUYER', async () => send(request, thief)],
          ['ERR_BAD_SIGNATURE', async () => send(await forge(d, request, b => { b.offer = { ...offer, body: { ...offer.body, title: 'changed' } } }))],
          ['ERR_INSUFFICIENT_FUNDS', async () => {
            const pricey = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 251 })
            return send(await forge(d, request, b => { b.offer = pricey; b.amount = 251; b.purchase = 'cd'.repeat(16) }))
          }]
        ]
        for (const [i, [code, attempt]] of cases.entries()) {
          await assert.rejects(attempt(), (err: any) => {
            assert.equal(err.code, code, `${code}: got ${err.code} ${err.message}`)
            return true
          }, `case ${i} (${code})`)
        }
        assert.deepEqual(await snapshot(escrow.role.ledger), before, 'nothing written by any refusal')
        const answer = await send(request)
        assert.equal(await escrow.role.ledger.balance(buyerId), 150)
        const afterPaid = await snapshot(escrow.role.ledger)
        await assert.rejects(send(await forge(d, request, b => { b.at = (b.at as number) + 1 })), { code: 'ERR_PURCHASE_ID_USED' })
        assert.deepEqual(await send(request), answer, 'the same request gets the same answer')
        assert.deepEqual(await snapshot(escrow.role.ledger), afterPaid)
        await escrow.role.ledger.withdraw(buyerId, 150)
      })

      it('takes 200 concurrent purchases from two buyers, one funded for half: each charged once, double spends refused', async function () {
        const PRICE = 7
        const EACH = 100
        const other = await world.startNode('buyer-2', [])
        const buyers = [{ node: buyer, d: await world.device('load-1'), funded: EACH }, { node: other, d: await world.device('load-2'), funded: EACH / 2 }]
        const offer = encodeObject(await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: PRICE }))
        for (const b of buyers) {
          const id = b.node.status().peerId
          await escrow.role.ledger.deposit(id, b.funded * PRICE - await escrow.role.ledger.balance(id))
        }
        const jobs: Array<{ buyer: number, request: Uint8Array }> = []
        for (const [k, b] of buyers.entries()) {
          for (let i = 0; i < EACH; i++) {
            const p = await b.d.device.beginPurchase({ offer, manifest: work.manifestBytes, buyer: b.node.status().peerId })
            jobs.push({ buyer: k, request: (await b.d.device.requestShare({ purchase: p.purchase, j: 1 })).request })
          }
        }
        const holdsBefore = (await escrow.role.ledger.holds({ limit: 10_000 })).length
        const started = Date.now()
        // every tenth request sent twice at once: the same answer, one charge
        // each buyer keeps up to 48 requests in flight on its connection (libp2p allows 64 streams of a protocol)
        const inFlight = [0, 0]
        const send = async (job: { buyer: number, request: Uint8Array }): Promise<Uint8Array> => {
          while (inFlight[job.buyer]! >= 48) await new Promise(resolve => setTimeout(resolve, 5))
          inFlight[job.buyer]!++
          try {
            return await requestUnblind({ connectionManager: buyers[job.buyer]!.node.streams }, addrOf(escrow), job.request, { signal: AbortSignal.timeout(60_000) })
          } finally {
            inFlight[job.buyer]!--
          }
        }
        const results = await Promise.allSettled([...jobs.map(send), ...jobs.filter((_, i) => i % 10 === 0).map(send)])
        const ms = Date.now() - started
        const first = results.slice(0, jobs.length)
        for (const [k, b] of buyers.entries()) {
          const mine = first.filter((_, i) => jobs[i]!.buyer === k)
          const refused = mine.flatMap(r => r.status === 'rejected' ? [(r.reason as { code: string }).code] : [])
          assert.equal(mine.length - refused.length, b.funded, `buyer ${k + 1}: as many answers as it paid for (refused: ${[...new Set(refused)].join(' ')})`)
          assert.deepEqual([...new Set(refused)], refused.length > 0 ? ['ERR_INSUFFICIENT_FUNDS'] : [])
          assert.equal(await escrow.role.ledger.balance(b.node.status().peerId), 0, `buyer ${k + 1} charged once per answer`)
        }
        results.slice(jobs.length).forEach((r, n) => {
          const original = first[n * 10]!
          if (original.status === 'fulfilled' && r.status === 'fulfilled') assert.deepEqual(r.value, original.value, 'the same request got the same answer')
          else assert.ok(original.status === 'rejected' || r.status === 'rejected')
        })
        assert.equal((await escrow.role.ledger.holds({ limit: 10_000 })).length - holdsBefore, EACH + EACH / 2)
        assert.deepEqual((await escrow.role.ledger.audit()).violations, [])
        console.log(`      ${engine}: ${results.length} requests (${jobs.length} purchases) in ${ms} ms; group commits ${JSON.stringify(escrow.role.escrow.commitStats)}`)
      })

      it('reserves over the wire: refusals write nothing, the request takes the reservation (one charge), no cancel after the answer, unanswered ones expire back', async function () {
        const buyerId = buyer.status().peerId
        const brief = await world.startEscrow('escrow-reserve', await escrowSettings('escrow-reserve', { reservationTtlMs: 1500 }))
        await brief.role.ledger.deposit(buyerId, 150)
        const offer = await offerFor([{ peer: brief.peer, n: brief.n }])
        const d = await world.device('reserver')
        const certificate = (await d.device.certificates()).signing
        const streams = { connectionManager: buyer.streams }
        const reserve = async (purchase: string, over: Partial<ReserveRequest> = {}): Promise<unknown> => requestReserve(streams, addrOf(brief), { offer: encodeObject(offer), j: 1, purchase, amount: 100, device: certificate, ...over })
        const before = await snapshot(brief.role.ledger)
        const other = await offerFor([{ peer: escrow.peer, n: escrow.n }])
        await assert.rejects(reserve('p0', { amount: 99 }), { code: 'ERR_WRONG_AMOUNT' })
        await assert.rejects(reserve('p0', { offer: encodeObject(other) }), { code: 'ERR_NOT_NAMED' })
        await assert.rejects(reserve('p0', { device: 'not a certificate' }), (err: any) => err.remote === true && /^ERR_/.test(err.code))
        const dear = await offerFor([{ peer: brief.peer, n: brief.n }], { price: 151 })
        const short: any = await reserve('p0', { offer: encodeObject(dear), amount: 151 }).then(() => undefined, (err: unknown) => err)
        assert.equal(short?.code, 'ERR_INSUFFICIENT_FUNDS')
        assert.deepEqual(short?.details, { balance: 150, amount: 151 }, 'the refusal frame carries the balance and the price')
        assert.deepEqual(await snapshot(brief.role.ledger), before, 'no refusal wrote anything')

        // reserved, then answered: 100 leaves the balance once, though only 50 is left when the request comes
        const p = await d.device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: buyerId })
        await reserve(p.purchase)
        assert.equal(await brief.role.ledger.balance(buyerId), 50)
        const { request } = await d.device.requestShare({ purchase: p.purchase, j: 1 })
        const answer = await requestUnblind(streams, addrOf(brief), request)
        assert.equal((await d.device.acceptAnswer({ purchase: p.purchase, j: 1, answer })).accepted, true)
        assert.equal(await brief.role.ledger.balance(buyerId), 50, 'one charge')
        await assert.rejects(requestCancelReservation(streams, addrOf(brief), p.purchase), { code: 'ERR_ALREADY_ANSWERED' })
        assert.equal((await brief.role.ledger.holds({ buyer: buyerId }))[0]?.state, 'open', 'the answered hold stays')

        // cancelled at once; another one left unanswered goes back by the sweep
        await reserve('cancelled', { amount: 50, offer: encodeObject(await offerFor([{ peer: brief.peer, n: brief.n }], { price: 50 })) })
        assert.deepEqual(await requestCancelReservation(streams, addrOf(brief), 'cancelled'), { v: 1, cancelled: true })
        assert.deepEqual(await requestCancelReservation(streams, addrOf(brief), 'cancelled'), { v: 1, cancelled: false })
        await reserve('forgotten', { amount: 50, offer: encodeObject(await offerFor([{ peer: brief.peer, n: brief.n }], { price: 50 })) })
        assert.equal(await brief.role.ledger.balance(buyerId), 0)
        await waitFor(async () => (await brief.role.ledger.balance(buyerId)) === 50, 15_000, 'the unanswered reservation to expire back to the buyer')
        const report = await brief.role.ledger.audit()
        assert.deepEqual(report.violations, [])
        assert.deepEqual(report.reserved, { open: 0, amount: 0 })
        assert.equal(await brief.role.ledger.balance(world.seller), 0, 'nothing reached the seller')
      })

      it('ends each hold once: receipt, fraud refund, refused dispute, expiry; the audit passes', async function () {
        const buyerId = buyer.status().peerId
        const faulty = await world.startEscrow('escrow-faulty', await escrowSettings('escrow-faulty', { faultyAnswers: true }))
        const brief = await world.startEscrow('escrow-brief', await escrowSettings('escrow-brief', { holdTtlMs: 1500 }))
        for (const e of [escrow, faulty, brief]) await e.role.ledger.deposit(buyerId, 1000)
        const buy = async (d: { device: SoftDevice }, e: typeof escrow, offer: Signed<Offer>): Promise<{ purchase: string, answer: Uint8Array, verdict: any }> => {
          const p = await d.device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: buyerId })
          const { request } = await d.device.requestShare({ purchase: p.purchase, j: 1 })
          const answer = await requestUnblind({ connectionManager: buyer.streams }, addrOf(e), request)
          return { purchase: p.purchase, answer, verdict: await d.device.acceptAnswer({ purchase: p.purchase, j: 1, answer }) }
        }
        const settle = async (e: typeof escrow, bytes: Uint8Array): Promise<Awaited<ReturnType<typeof requestSettle>>> => requestSettle({ connectionManager: buyer.streams }, addrOf(e), bytes)

        // receipt: released to the seller once
        const d1 = await world.device('receipt')
        const sellerBefore = await escrow.role.ledger.balance(world.seller)
        const bought = await buy(d1, escrow, await offerFor([{ peer: escrow.peer, n: escrow.n }]))
        await d1.device.completePurchase({ purchase: bought.purchase })
        const { receipt } = await d1.device.receipt({ purchase: bought.purchase })
        assert.deepEqual([(await settle(escrow, receipt)).ended, (await settle(escrow, receipt)).ended], [true, false])
        assert.equal(await escrow.role.ledger.balance(world.seller), sellerBefore + 100)

        // fraud proof against the faulty escrow: refunded once
        const d2 = await world.device('fraud')
        const fraud = await buy(d2, faulty, await offerFor([{ peer: faulty.peer, n: faulty.n }]))
        assert.equal(fraud.verdict.accepted, false)
        assert.equal(await faulty.role.ledger.balance(buyerId), 900)
        const refund = await settle(faulty, fraud.verdict.fraud)
        assert.deepEqual([refund.state, refund.refused, refund.ended], ['refunded', false, true])
        assert.equal(await faulty.role.ledger.balance(buyerId), 1000)
        await assert.rejects(settle(faulty, fraud.verdict.fraud), { code: 'ERR_HOLD_ENDED' })

        // a fraud claim against a correct answer is refused: the hold goes to the seller
        const d3 = await world.device('false-claim')
        const good = await buy(d3, escrow, await offerFor([{ peer: escrow.peer, n: escrow.n }]))
        const goodRequest = decodeObject((await d3.device.requestShare({ purchase: good.purchase, j: 1 })).request) as Signed<UnblindRequest>
        const { signingKey } = await d3.store.open(Buffer.from(PASSPHRASE))
        const cert = new Uint8Array(new X509Certificate((await d3.device.certificates()).signing).raw)
        const claim = encodeObject(signWithDeviceKey('dispute', {
          v: 1, purchase: good.purchase, offer: signedId(goodRequest.body.offer), reason: 'fraud', openings: [], fraud: { request: goodRequest, answer: decodeObject(good.answer) }, at: Date.now()
        }, signingKey, cert))
        const sellerMid = await escrow.role.ledger.balance(world.seller)
        const refused = await settle(escrow, claim)
        assert.deepEqual([refused.state, refused.refused], ['released', true])
        assert.equal(await escrow.role.ledger.balance(world.seller), sellerMid + 100)

        // expiry: an unanswered hold goes to the seller once its time is up
        const d4 = await world.device('silent')
        await buy(d4, brief, await offerFor([{ peer: brief.peer, n: brief.n }]))
        assert.equal((await brief.role.ledger.holds({ state: 'open' })).length, 1)
        await waitFor(async () => (await brief.role.ledger.holds({ state: 'open' })).length === 0, 15_000, 'the hold to expire')
        assert.equal(await brief.role.ledger.balance(world.seller), 100)
        assert.equal((await brief.role.ledger.holds({ state: 'released' }))[0]?.endReason, 'expired unanswered')

        for (const e of [escrow, faulty, brief]) {
          const report = await e.role.ledger.audit()
          assert.deepEqual(report.violations, [])
          assert.equal(report.held, report.deposits - report.withdrawals)
        }
      })
    })
  })
}

describe('escrow ledger on postgres through an outage', function () {
  this.timeout(300_000)
  let server: PgServer | undefined
  let world: World
  let work: TestWork

  before(async function () {
    server = await startPostgres(requirePostgres(this))
    world = await createWorld()
    const plain = join(world.dir, 'work.bin')
    await writeFile(plain, randomBytes(10_000))
    work = await encryptWork(world.dir, 'work', plain)
  })

  after(async function () {
    await world?.stop()
    await server?.destroy()
  })

  it('charges each purchase once when two escrow processes commit the same purchases, or rival requests under one purchase id, in groups at once', async function () {
    const url = await server!.createDatabase('two_writers')
    const ledgers = await Promise.all([0, 1].map(async () => PgLedger.open({ url, password: server!.password }, log)))
    const [a, b] = ledgers as [PgLedger, PgLedger]
    try {
      await a.deposit('racer', 100)
      // the same requests through each process, under its own hold ids and answers, in groups of 10, all at once
      const mine = Array.from({ length: 120 }, () => newHold('racer', 1))
      const theirs = mine.map(h => ({ ...h, id: randomBytes(16).toString('hex'), answer: bytes(64) }))
      const groups = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].flatMap(k => [a.openHolds(mine.slice(k * 10, k * 10 + 10)), b.openHolds(theirs.slice(k * 10, k * 10 + 10).reverse())])
      const outcomes = await Promise.all(groups)
      const byProcess = [outcomes.filter((_, i) => i % 2 === 0).flat(), outcomes.filter((_, i) => i % 2 === 1).flatMap(g => g.reverse())]
      let charged = 0
      for (let i = 0; i < mine.length; i++) {
        const [x, y] = [byProcess[0]![i]!, byProcess[1]![i]!]
        if ('error' in x || 'error' in y) {
          // no money left: both refused the same way, or one charged and the other got its hold
          const codes = [x, y].map(o => 'error' in o ? (o.error as { code: string }).code : (o.result.charged ? 'charged' : 'replayed'))
          assert.ok(codes.every(c => c === 'ERR_INSUFFICIENT_FUNDS') || (codes.includes('ERR_INSUFFICIENT_FUNDS') && !codes.includes('charged')), `purchase ${i}: ${codes.join(' ')}`)
          continue
        }
        assert.equal(Number(x.result.charged) + Number(y.result.charged), x.result.charged || y.result.charged ? 1 : 0, `purchase ${i} charged at most once`)
        assert.equal(x.result.hold.id, y.result.hold.id, `purchase ${i}: both processes name one hold`)
        assert.deepEqual(x.result.hold.answer, y.result.hold.answer, `purchase ${i}: and one answer`)
        if (x.result.charged || y.result.charged) charged++
      }
      assert.equal(charged, 100, 'exactly as many holds as the money pays for')
      assert.equal(await a.balance('racer'), 0)

      // rival requests under the same purchase ids, from two buyers: no common row lock, so the
      // groups meet at the UNIQUE index; one request per purchase id is charged, the other refused
      await a.deposit('rival-a', 100)
      await b.deposit('rival-b', 100)
      const first = Array.from({ length: 60 }, () => newHold('rival-a', 1))
      const rivals = first.map(h => ({ ...newHold('rival-b', 1), device: h.device, purchase: h.purchase }))
      const raced = await Promise.all([0, 1, 2, 3, 4, 5].flatMap(k => [a.openHolds(first.slice(k * 10, k * 10 + 10)), b.openHolds(rivals.slice(k * 10, k * 10 + 10))]))
      const codes = raced.flat().map(o => 'error' in o ? (o.error as { code: string }).code : (o.result.charged ? 'charged' : 'replayed'))
      assert.equal(codes.filter(c => c === 'charged').length, 60, codes.join(' '))
      assert.equal(codes.filter(c => c === 'ERR_PURCHASE_ID_USED').length, 60, codes.join(' '))
      assert.equal(await a.balance('rival-a') + await b.balance('rival-b'), 200 - 60)
      assert.equal((await b.holds({ limit: 1000 })).length, 160)
      assert.deepEqual((await b.audit()).violations, [])
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('refuses with ERR_LEDGER_UNAVAILABLE while the database is down mid-load; retried, nothing is charged twice or lost', async function () {
    const pgServer = server!
    const PRICE = 5
    const EACH = 100
    const SLACK = 3
    const escrow = await world.startEscrow('escrow-outage', { ledger: await pgServer.createDatabase('outage'), ledgerPasswordFile: pgServer.passwordFile })
    const addr = multiaddr(escrow.node.status().addresses[0]!)
    const offer = encodeObject(await createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price: PRICE, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
    }))
    const buyers = await Promise.all(['outage-1', 'outage-2'].map(async name => ({ node: await world.startNode(name, []), d: await world.device(name) })))
    const jobs: Array<{ buyer: number, purchase: string, request: Uint8Array }> = []
    for (const [k, b] of buyers.entries()) {
      await escrow.role.ledger.deposit(b.node.status().peerId, (EACH + SLACK) * PRICE)
      for (let i = 0; i < EACH; i++) {
        const p = await b.d.device.beginPurchase({ offer, manifest: work.manifestBytes, buyer: b.node.status().peerId })
        jobs.push({ buyer: k, purchase: p.purchase, request: (await b.d.device.requestShare({ purchase: p.purchase, j: 1 })).request })
      }
    }

    const refusals: string[] = []
    const failures: string[] = []
    let answered = 0
    const inFlight = [0, 0]
    const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
    /** one purchase: the very same request again after any ERR_LEDGER_UNAVAILABLE, until it is answered */
    const buy = async (job: typeof jobs[number]): Promise<Uint8Array> => {
      const deadline = Date.now() + 120_000
      for (;;) {
        while (inFlight[job.buyer]! >= 48) await sleep(5)
        inFlight[job.buyer]!++
        try {
          const answer = await requestUnblind({ connectionManager: buyers[job.buyer]!.node.streams }, addr, job.request, { signal: AbortSignal.timeout(30_000) })
          answered++
          return answer
        } catch (err: any) {
          if (err instanceof RemoteError) refusals.push(err.code)
          else failures.push(String(err?.code ?? err?.name))
          if (err?.code !== 'ERR_LEDGER_UNAVAILABLE' || Date.now() > deadline) throw err
        } finally {
          inFlight[job.buyer]!--
        }
        await sleep(100 + Math.floor(Math.random() * 100))
      }
    }
    const started = Date.now()
    const load = Promise.allSettled(jobs.map(buy))
    // the database crashes (no shutdown checkpoint) with part of the load answered
    await waitFor(() => answered >= 20, 60_000, 'the first answers')
    const answeredAtStop = answered
    const stoppedAt = Date.now() - started
    await pgServer.stop('immediate')
    await sleep(1500)
    const refusedWhileDown = refusals.length
    await pgServer.start()
    const results = await load
    const ms = Date.now() - started

    const lost = results.flatMap((r, i) => r.status === 'rejected' ? [`${jobs[i]!.purchase}: ${String((r.reason as Error).message)}`] : [])
    assert.deepEqual(lost, [], 'every purchase answered in the end')
    assert.ok(answeredAtStop < jobs.length, 'the database went down in the middle of the load')
    assert.ok(refusedWhileDown > 0, 'requests were refused while it was down')
    assert.deepEqual([...new Set(refusals)], ['ERR_LEDGER_UNAVAILABLE'], 'every refusal said the ledger is unavailable')
    assert.deepEqual(failures, [], 'no stream was reset: each refusal came as an error frame')
    for (const b of buyers) assert.equal(await escrow.role.ledger.balance(b.node.status().peerId), SLACK * PRICE, 'charged once per purchase')
    const holds = await escrow.role.ledger.holds({ limit: 10_000 })
    assert.equal(holds.length, jobs.length, 'one hold per purchase')
    const answers = results.map(r => (r as PromiseFulfilledResult<Uint8Array>).value)
    for (const [i, answer] of answers.entries()) {
      const hold = (decodeObject(answer) as Signed<{ hold: string }>).body.hold
      assert.equal(holds.find(h => h.id === hold)?.purchase, jobs[i]!.purchase, 'the answer names the hold recorded for its purchase')
    }
    // every request once more: the stored answers, byte for byte, no charge
    const again = await Promise.all(jobs.slice(0, 40).map(buy))
    assert.deepEqual(again, answers.slice(0, 40))
    const report = await escrow.role.ledger.audit()
    assert.deepEqual(report.violations, [])
    assert.deepEqual(report.holds, { open: jobs.length, released: 0, refunded: 0 })
    assert.equal(report.deposits, 2 * (EACH + SLACK) * PRICE)
    assert.equal(report.held, report.deposits)
    console.log(`      outage at ${stoppedAt} ms (${answeredAtStop} answered); ${refusals.length} refusals ERR_LEDGER_UNAVAILABLE (${refusedWhileDown} while down 1.5 s); all ${jobs.length} bought in ${ms} ms`)
  })
})
