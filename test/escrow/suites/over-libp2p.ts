// The escrow over real libp2p on one ledger engine: every refusal leaves the ledger as it
// was, 200 purchases at once with double spends, reservations, receipt, disputes, fraud
// refund, expiry, audit.
import assert from 'node:assert/strict'
import { X509Certificate, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeObject, encodeObject } from '../../../device/objects/codec.ts'
import { contentIdOf } from '../../../device/objects/market.ts'
import { signWithDeviceKey, signedId } from '../../../device/objects/signed.ts'
import { createOffer } from '../../../node/seller/offers.ts'
import { requestSettle } from '../../../protocols/escrow/settle.ts'
import { requestUnblind } from '../../../protocols/escrow/unblind.ts'
import { requestCancelReservation, requestReserve } from '../../../protocols/escrow/reserve.ts'
import type { ReserveRequest } from '../../../protocols/escrow/reserve.ts'
import { PASSPHRASE, createWorld } from '../../helpers/escrow-world.ts'
import { encryptWork } from '../../helpers/market.ts'
import { waitFor } from '../../helpers/nodes.ts'
import { snapshot } from './ledger-fixtures.ts'
import { sharedPostgres } from './shared-postgres.ts'
import type { LedgerEngine } from '../../../node/escrow/ledger-store.ts'
import type { EscrowSettings } from '../../../node/escrow/state.ts'
import type { KeyfairNode } from '../../../node/keyfair-node.ts'
import type { EscrowRole } from '../../../node/roles/escrow.ts'
import type { Offer, UnblindRequest } from '../../../device/objects/market.ts'
import type { Signed } from '../../../device/objects/signed.ts'
import type { KeyStore } from '../../../device/store/keystore.ts'
import type { SoftDevice } from '../../../device/soft-device.ts'
import type { World } from '../../helpers/escrow-world.ts'
import type { TestWork } from '../../helpers/market.ts'
import type { PgServer } from '../../helpers/postgres.ts'

export function overLibp2pSuite (engine: LedgerEngine): void {
  describe('the escrow over libp2p', function () {
    this.timeout(240_000)
    let server: PgServer | undefined
    let world: World
    let work: TestWork
    let buyer: KeyfairNode
    let escrow: { node: KeyfairNode, role: EscrowRole, peer: string, n: Uint8Array }
    const addrOf = (e: { node: KeyfairNode }): ReturnType<typeof multiaddr> => multiaddr(e.node.status().addresses[0]!)

    /** escrow settings putting its ledger on this engine (a database of its own on PostgreSQL) */
    const escrowSettings = async (name: string, settings: Partial<EscrowSettings> = {}): Promise<Partial<EscrowSettings>> => engine === 'sqlite'
      ? settings
      : { ...settings, ledger: await server!.createDatabase(name.replace(/-/g, '_')), ledgerPasswordFile: server!.passwordFile }

    before(async function () {
      if (engine === 'postgres') server = await sharedPostgres(this)
      world = await createWorld()
      const plain = join(world.dir, 'work.bin')
      await writeFile(plain, randomBytes(10_000))
      work = await encryptWork(world.dir, 'work', plain)
      buyer = await world.startNode('buyer', [])
      escrow = await world.startEscrow('escrow-main', await escrowSettings('escrow-main'))
    })

    after(async function () {
      await world?.stop()
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
}
