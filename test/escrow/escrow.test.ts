import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf } from '../../device/objects/market.ts'
import { createOffer } from '../../node/seller/offers.ts'
import * as lp from 'it-length-prefixed'
import { ACCOUNT_LIMITS, ACCOUNT_PROTOCOL, requestAccount } from '../../protocols/escrow/account.ts'
import { INFO_LIMITS, INFO_PROTOCOL, requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { SETTLE_LIMITS, SETTLE_PROTOCOL, requestSettle } from '../../protocols/escrow/settle.ts'
import { UNBLIND_LIMITS, UNBLIND_PROTOCOL, requestUnblind } from '../../protocols/escrow/unblind.ts'
import { RENEW_LIMITS, RENEW_PROTOCOL, requestRenewal } from '../../protocols/escrow/renew.ts'
import { RESERVE_LIMITS, RESERVE_PROTOCOL } from '../../protocols/escrow/reserve.ts'
import { FrameKind, FrameStream } from '../../protocols/toolkit/index.ts'
import type { Stream } from '@libp2p/interface'
import { encryptWork } from '../helpers/market.ts'
import { PASSPHRASE, createWorld } from '../helpers/escrow-world.ts'
import { createTestAgency } from '../helpers/test-agency.ts'
import { unsignedVarint, waitFor } from '../helpers/nodes.ts'
import { X509Certificate, createPublicKey } from 'node:crypto'
import { agencyPaths } from '../../node/agency/agency.ts'
import { AGENCY_CA_KEY } from '../../node/keys/keystore.ts'
import { issueCertificate, keyIdentifierOf } from '../../node/agency/x509.ts'
import { certificateSubject, decodePem } from '../../device/pki/der.ts'
import { DEVICE_UNIT } from '../../device/pki/index.ts'
import { readFile } from 'node:fs/promises'
import { os2ip, priceExponent, rawPublic } from '../../device/crypto/index.ts'
import { parseSignedRenewal, termsCid } from '../../device/objects/market.ts'
import { signWithDeviceKey, signWithPeerKey, signedId, verifyPeerSigned } from '../../device/objects/signed.ts'
import { testKeys } from '../helpers/keys.ts'
import type { KeyStore } from '../../device/store/keystore.ts'
import type { SoftDevice } from '../../device/soft-device.ts'
import type { Offer, UnblindRequest } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { SettleAnswer } from '../../protocols/escrow/settle.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'
import type { KeyfairNode } from '../../node/keyfair-node.ts'
import type { EscrowRole } from '../../node/roles/escrow.ts'

describe('escrow over real libp2p', function () {
  this.timeout(120_000)
  let world: World
  let work: TestWork
  let escrow: { node: KeyfairNode, role: EscrowRole, peer: string, n: Uint8Array }
  let buyer: KeyfairNode

  before(async function () {
    world = await createWorld()
    const plain = join(world.dir, 'work.bin')
    await writeFile(plain, randomBytes(200_000))
    work = await encryptWork(world.dir, 'work', plain)
    escrow = await world.startEscrow('escrow-a')
    buyer = await world.startNode('buyer', [])
  })

  after(async function () {
    await world?.stop()
  })

  const escrowAddr = (): ReturnType<typeof multiaddr> => multiaddr(escrow.node.status().addresses[0]!)

  it('answers a paid request once, holds the price, and releases it to the seller on the receipt', async function () {
    const buyerId = buyer.status().peerId
    await escrow.role.ledger.deposit(buyerId, 1000)
    const info = await requestEscrowInfo({ connectionManager: buyer.streams }, escrowAddr())
    assert.equal(info.peer, escrow.peer)
    const offer = await createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price: 300, currency: 'EUR', escrows: [{ peer: info.peer, n: info.n }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
    })
    const { device } = await world.device('happy')
    const p = await device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: buyerId })
    const { request } = await device.requestShare({ purchase: p.purchase, j: 1 })
    const answer = await requestUnblind({ connectionManager: buyer.streams }, escrowAddr(), request)
    const again = await requestUnblind({ connectionManager: buyer.streams }, escrowAddr(), request)
    assert.deepEqual(again, answer, 'the same request gets the same answer')
    assert.equal((await escrow.role.ledger.balance(buyerId)), 700, 'charged once')
    assert.deepEqual(await device.acceptAnswer({ purchase: p.purchase, j: 1, answer }), { accepted: true, have: 1, need: 1 })
    await device.completePurchase({ purchase: p.purchase })
    const { receipt } = await device.receipt({ purchase: p.purchase })
    const settled = await requestSettle({ connectionManager: buyer.streams }, escrowAddr(), receipt)
    assert.equal(settled.state, 'released')
    assert.equal(settled.ended, true)
    assert.equal((await escrow.role.ledger.balance(world.seller)), 300)
    const twice = await requestSettle({ connectionManager: buyer.streams }, escrowAddr(), receipt)
    assert.equal(twice.ended, false)
    assert.equal((await escrow.role.ledger.balance(world.seller)), 300)
    const account = await requestAccount({ connectionManager: buyer.streams }, escrowAddr())
    assert.equal(account.balance, 700)
    assert.equal(account.holds[0]?.state, 'released')
    // the buyer sold nothing here: its purchases are holds, not sales
    assert.deepEqual(account.sales, [])
    assert.deepEqual((await escrow.role.ledger.audit()).violations, [])
  })

  /** everything the ledger holds, to show a refusal changed nothing */
  async function ledgerState (role: EscrowRole): Promise<unknown> {
    const { ledger } = role
    return { postings: await ledger.postings({ limit: 100_000 }), holds: await ledger.holds({ limit: 100_000 }), audit: await ledger.audit() }
  }

  async function offerFor (escrows: Array<{ peer: string, n: Uint8Array }>, options: { t?: number, price?: number, expiry?: number, open?: boolean, currency?: string, work?: TestWork } = {}): Promise<Signed<Offer>> {
    const w = options.work ?? work
    return createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(w.manifest), price: options.price ?? 100, currency: options.currency ?? 'EUR', escrows, t: options.t ?? 1, expiry: options.expiry ?? Date.now() + 3_600_000 },
      title: 't', tags: [], key: w.secrets.key, contentSalt: w.secrets.salt, open: options.open ?? true
    })
  }

  /** A device-signed request with some fields changed, signed again by the same device */
  async function forge (d: { store: KeyStore, device: SoftDevice }, request: Uint8Array, change: (body: Record<string, unknown>) => void): Promise<Uint8Array> {
    const signed = decodeObject(request) as Signed<Record<string, unknown>>
    const body = { ...signed.body }
    change(body)
    const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
    const der = new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)
    return encodeObject(signWithDeviceKey('unblind-request', body, signingKey, der))
  }

  it('refuses each bad request with its code and writes nothing', async function () {
    const other = await world.startEscrow('escrow-other')
    const d = await world.device('refusals')
    const buyerId = buyer.status().peerId
    await escrow.role.ledger.deposit(buyerId, 150)
    const offer = await offerFor([{ peer: escrow.peer, n: escrow.n }, { peer: other.peer, n: other.n }], { t: 1, price: 100 })
    const p = await d.device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: buyerId })
    const { request } = await d.device.requestShare({ purchase: p.purchase, j: 1 })
    const { request: forOther } = await d.device.requestShare({ purchase: p.purchase, j: 2 })
    const cheap = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 1 })
    const expired = await offerFor([{ peer: escrow.peer, n: escrow.n }], { expiry: Date.now() - 1000 })
    const dollars = await offerFor([{ peer: escrow.peer, n: escrow.n }], { currency: 'USD' })
    const tampered = decodeObject(request) as Signed<Record<string, unknown>>
    const before = await ledgerState(escrow.role)
    const send = async (bytes: Uint8Array, from: KeyfairNode = buyer): Promise<Uint8Array> => requestUnblind({ connectionManager: from.streams }, escrowAddr(), bytes)
    const thief = await world.startNode('thief', [])

    const cases: Array<[string, () => Promise<unknown>]> = [
      ['ERR_NOT_NAMED', async () => send(forOther)],
      ['ERR_NOT_NAMED', async () => send(await forge(d, request, b => { b.j = 2 }))],
      ['ERR_WRONG_AMOUNT', async () => send(await forge(d, request, b => { b.amount = 1 }))],
      ['ERR_BAD_BLINDED', async () => send(await forge(d, request, b => { b.b = new Uint8Array(escrow.n.length) }))],
      ['ERR_BAD_BLINDED', async () => send(await forge(d, request, b => { b.b = escrow.n }))],
      ['ERR_CLOCK_WINDOW', async () => send(await forge(d, request, b => { b.at = Date.now() - 10 * 60_000 }))],
      ['ERR_CLOCK_WINDOW', async () => send(await forge(d, request, b => { b.at = Date.now() + 10 * 60_000 }))],
      ['ERR_OFFER_EXPIRED', async () => send(await forge(d, request, b => { b.offer = expired }))],
      ['ERR_CURRENCY', async () => send(await forge(d, request, b => { b.offer = dollars }))],
      ['ERR_BAD_SIGNATURE', async () => send(await forge(d, request, b => { b.offer = { ...offer, body: { ...offer.body, title: 'changed' } } }))],
      ['ERR_NOT_BUYER', async () => send(request, thief)],
      ['ERR_NOT_BUYER', async () => send(await forge(d, request, b => { b.buyer = thief.status().peerId }))],
      ['ERR_BAD_SIGNATURE', async () => send(encodeObject({ ...tampered, body: { ...tampered.body, at: (tampered.body.at as number) + 1 } }))],
      ['ERR_BAD_SIGNATURE', async () => send(encodeObject({ ...tampered, sig: new Uint8Array(256) }))],
      ['ERR_BAD_OBJECT', async () => send(encodeObject({ ...tampered, kind: 'receipt' }))],
      ['ERR_INSUFFICIENT_FUNDS', async () => {
        // another purchase id at a price one above the buyer's whole balance
        const funds = (await escrow.role.ledger.balance(buyerId))
        const pricey = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: funds + 1 })
        return send(await forge(d, request, b => { b.offer = pricey; b.amount = funds + 1; b.purchase = 'cd'.repeat(16) }))
      }]
    ]
    for (const [i, [code, attempt]] of cases.entries()) {
      await assert.rejects(attempt(), (err: any) => {
        assert.equal(err.code, code, `${code}: got ${err.code} ${err.message}`)
        assert.ok(err.message.length > 10, 'a clear message')
        return true
      }, `case ${i} (${code})`)
    }
    assert.deepEqual(await ledgerState(escrow.role), before, 'nothing written by any refusal')

    // a certificate from another agency, and a request with an unblinded c and a forged signature
    const stranger = createTestAgency()
    const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
    const csrs = await d.device.certificateRequests()
    const strangerCert = new Uint8Array(new X509Certificate(stranger.issueDevice(csrs).signing).raw)
    const foreign = encodeObject(signWithDeviceKey('unblind-request', tampered.body, signingKey, strangerCert))
    await assert.rejects(send(foreign), { code: 'ERR_CERT_UNTRUSTED' })
    // a certificate of the right agency for this very device, but expired yesterday
    const paths = agencyPaths(join(world.dir, 'agency'))
    const rootPem = await readFile(paths.certificate, 'utf8')
    const rootKey = (await (await testKeys(join(world.dir, 'agency'))).getPrivateKey(AGENCY_CA_KEY))!
    const issuer = { privateKey: rootKey, subject: certificateSubject(decodePem(rootPem, 'CERTIFICATE')!), keyIdentifier: keyIdentifierOf(createPublicKey(rootKey)) }
    const lapsed = issueCertificate(issuer, createPublicKey(signingKey), { commonName: d.deviceId, organizationalUnit: DEVICE_UNIT }, 'device-signing',
      { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })
    const expiredCert = encodeObject(signWithDeviceKey('unblind-request', tampered.body, signingKey, new Uint8Array(new X509Certificate(lapsed).raw)))
    await assert.rejects(send(expiredCert), { code: 'ERR_CERT_EXPIRED' })
    const unblinded = encodeObject({ ...tampered, body: { ...tampered.body, b: offer.body.shares[0]!.c } })
    await assert.rejects(send(unblinded), { code: 'ERR_BAD_SIGNATURE' })
    assert.deepEqual(await ledgerState(escrow.role), before)

    // the genuine request is still fine, then a different request under its used purchase id is refused
    const funds = (await escrow.role.ledger.balance(buyerId))
    const answer = await send(request)
    assert.equal((await escrow.role.ledger.balance(buyerId)), funds - 100)
    const afterPaid = await ledgerState(escrow.role)
    await assert.rejects(send(await forge(d, request, b => { b.at = (b.at as number) + 1 })), { code: 'ERR_PURCHASE_ID_USED' })
    assert.deepEqual(await send(request), answer)
    assert.deepEqual(await ledgerState(escrow.role), afterPaid)

    // revoked at the agency: refused once the escrow holds the new CRL
    world.agencyRole.agency.revoke(d.deviceId, 'keyCompromise')
    await escrow.role.refreshCrl()
    const p2 = await d.device.beginPurchase({ offer: encodeObject(cheap), manifest: work.manifestBytes, buyer: buyerId })
    const { request: fresh } = await d.device.requestShare({ purchase: p2.purchase, j: 1 })
    await assert.rejects(send(fresh), { code: 'ERR_CERT_REVOKED' })
    assert.deepEqual(await ledgerState(escrow.role), afterPaid)
  })

  it('an answer bought under cheaper terms is useless for the dearer offer', async function () {
    const d = await world.device('cheapskate')
    const buyerId = buyer.status().peerId
    await escrow.role.ledger.deposit(buyerId, 10)
    const balance = (await escrow.role.ledger.balance(buyerId))
    const dear = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 1000 })
    const cheap = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 1 })
    const p = await d.device.beginPurchase({ offer: encodeObject(dear), manifest: work.manifestBytes, buyer: buyerId })
    const { request } = await d.device.requestShare({ purchase: p.purchase, j: 1 })
    // a broken-into device sends the dear offer's blinded c under the cheap offer's terms
    const swapped = await forge(d, request, b => { b.offer = cheap; b.amount = 1 })
    const answer = await requestUnblind({ connectionManager: buyer.streams }, escrowAddr(), swapped)
    assert.equal((await escrow.role.ledger.balance(buyerId)), balance - 1, 'the cheap price was paid')
    // the answer names the swapped request, so the device cannot even take it for its own
    await assert.rejects(d.device.acceptAnswer({ purchase: p.purchase, j: 1, answer }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    // and the maths: z^-1… the unblinded value fails x^e_T = c under the dear terms
    const z = os2ip((decodeObject(answer) as Signed<{ z: Uint8Array }>).body.z)
    const eDear = priceExponent(termsCid(dear.body.terms).bytes)
    const n = os2ip(escrow.n)
    assert.notEqual(rawPublic(z, eDear, n), os2ip((decodeObject(swapped) as Signed<{ b: Uint8Array }>).body.b))
  })

  async function buy (d: { device: SoftDevice }, escrows: Array<{ peer: string, n: Uint8Array, addr: ReturnType<typeof multiaddr> }>, offer: Signed<Offer>, w: TestWork = work): Promise<{ purchase: string, answers: Uint8Array[], verdicts: unknown[] }> {
    const p = await d.device.beginPurchase({ offer: encodeObject(offer), manifest: w.manifestBytes, buyer: buyer.status().peerId })
    const answers: Uint8Array[] = []
    const verdicts: unknown[] = []
    for (const [i, e] of escrows.entries()) {
      const { request } = await d.device.requestShare({ purchase: p.purchase, j: i + 1 })
      const answer = await requestUnblind({ connectionManager: buyer.streams }, e.addr, request)
      answers.push(answer)
      verdicts.push(await d.device.acceptAnswer({ purchase: p.purchase, j: i + 1, answer }))
    }
    return { purchase: p.purchase, answers, verdicts }
  }

  const settle = async (addr: ReturnType<typeof multiaddr>, bytes: Uint8Array): Promise<SettleAnswer> => requestSettle({ connectionManager: buyer.streams }, addr, bytes)

  it('ends each hold once: receipt, fraud proof, valid and refused disputes, expiry', async function () {
    const buyerId = buyer.status().peerId
    const faulty = await world.startEscrow('escrow-faulty', { faultyAnswers: true })
    const brief = await world.startEscrow('escrow-brief', { holdTtlMs: 1500 })
    const addrOf = (e: { node: KeyfairNode }): ReturnType<typeof multiaddr> => multiaddr(e.node.status().addresses[0]!)
    for (const e of [escrow, faulty, brief]) (await e.role.ledger.deposit(buyerId, 1000))
    const sellerBefore = async (e: { role: EscrowRole }): Promise<number> => e.role.ledger.balance(world.seller)

    // fraud proof: the faulty escrow's answer fails the device's check; the dispute refunds it once
    const d1 = await world.device('fraud')
    const fraudOffer = await offerFor([{ peer: faulty.peer, n: faulty.n }], { price: 100 })
    const bought = await buy(d1, [{ ...faulty, addr: addrOf(faulty) }], fraudOffer)
    const verdict = bought.verdicts[0] as { accepted: boolean, fraud: Uint8Array }
    assert.equal(verdict.accepted, false)
    assert.equal((await faulty.role.ledger.balance(buyerId)), 900)
    const refund = await settle(addrOf(faulty), verdict.fraud)
    assert.deepEqual([refund.state, refund.refused, refund.ended], ['refunded', false, true])
    assert.equal((await faulty.role.ledger.balance(buyerId)), 1000)
    await assert.rejects(settle(addrOf(faulty), verdict.fraud), { code: 'ERR_HOLD_ENDED' })
    assert.equal((await faulty.role.ledger.balance(buyerId)), 1000)

    // a fraud claim against a correct answer is refused: the hold goes to the seller
    const d2 = await world.device('false-claim')
    const good = await buy(d2, [{ ...escrow, addr: escrowAddr() }], await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 100 }))
    const goodRequest = decodeObject((await d2.device.requestShare({ purchase: good.purchase, j: 1 })).request)
    const { signingKey } = await d2.store.open(Buffer.from(PASSPHRASE))
    const cert = new Uint8Array(new X509Certificate((await d2.device.certificates()).signing).raw)
    const falseClaim = encodeObject(signWithDeviceKey('dispute', {
      v: 1, purchase: good.purchase, offer: (goodRequest as Signed<UnblindRequest>).body.offer != null ? signedId((goodRequest as Signed<UnblindRequest>).body.offer) : undefined, reason: 'fraud', openings: [],
      fraud: { request: goodRequest, answer: decodeObject(good.answers[0]!) }, at: Date.now()
    }, signingKey, cert))
    const sellerEscrowBefore = await sellerBefore(escrow)
    const refused = await settle(escrowAddr(), falseClaim)
    assert.deepEqual([refused.state, refused.refused], ['released', true])
    assert.equal((await escrow.role.ledger.balance(world.seller)), sellerEscrowBefore + 100)

    // a seller whose share wrap is bad: the key dispute opens the shares and refunds
    const liar = { ...work, secrets: { ...work.secrets, key: new Uint8Array(randomBytes(32)) } }
    const badOffer = await createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price: 100, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 'bad', tags: [], key: liar.secrets.key, contentSalt: work.secrets.salt, open: true
    })
    badOffer.body.kc = (await offerFor([{ peer: escrow.peer, n: escrow.n }])).body.kc
    const resigned = await signWithPeerKey('offer', badOffer.body, world.sellerKey) as Signed<Offer>
    const d3 = await world.device('cheated')
    const cheated = await buy(d3, [{ ...escrow, addr: escrowAddr() }], resigned)
    await assert.rejects(d3.device.completePurchase({ purchase: cheated.purchase }), { code: 'ERR_KEY_COMMITMENT' })
    const keyDispute = await d3.device.dispute({ purchase: cheated.purchase, reason: 'key' })
    const buyerBefore = (await escrow.role.ledger.balance(buyerId))
    const keyRefund = await settle(escrowAddr(), keyDispute.dispute)
    assert.deepEqual([keyRefund.state, keyRefund.refused], ['refunded', false], keyRefund.reason)
    assert.equal((await escrow.role.ledger.balance(buyerId)), buyerBefore + 100)

    // a buyer who disputes a good purchase (a chunk that decrypts fine) is refused
    const d4 = await world.device('chancer')
    const fineOffer = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 100 })
    const fine = await buy(d4, [{ ...escrow, addr: escrowAddr() }], fineOffer)
    await d4.device.completePurchase({ purchase: fine.purchase })
    const chunk0 = (await readFile(work.ciphertextFile)).subarray(0, work.manifest.chunkSize + 16)
    // the device itself signs no dispute over a chunk that decrypts (it would disclose K)
    await assert.rejects(d4.device.dispute({ purchase: fine.purchase, reason: 'chunk', chunk: { index: 0, data: new Uint8Array(chunk0) } }), { code: 'ERR_CHUNK_DECRYPTS' })
    assert.equal((await d4.device.purchase({ purchase: fine.purchase })).state, 'complete')
    // a device broken into signs one anyway: the escrow refuses it on its own check
    const chancerSecrets = await d4.store.open(Buffer.from(PASSPHRASE))
    const x = (await d4.store.getRecord(chancerSecrets, 'purchase', fine.purchase) as { shares: Array<{ j: number, x: Uint8Array }> }).shares[0]!
    const chancerCert = new Uint8Array(new X509Certificate((await d4.device.certificates()).signing).raw)
    const chancer = { dispute: encodeObject(signWithDeviceKey('dispute', {
      v: 1, purchase: fine.purchase, offer: signedId(fineOffer), reason: 'chunk', openings: [{ j: 1, x: x.x }],
      chunk: { index: 0, data: new Uint8Array(chunk0) }, manifest: work.manifest, at: Date.now()
    }, chancerSecrets.signingKey, chancerCert)) }
    const sellerBeforeChance = (await escrow.role.ledger.balance(world.seller))
    const chance = await settle(escrowAddr(), chancer.dispute)
    assert.deepEqual([chance.state, chance.refused], ['released', true], chance.reason)
    assert.equal((await escrow.role.ledger.balance(world.seller)), sellerBeforeChance + 100)

    // expiry: an unanswered hold goes to the seller once its time is up
    const d5 = await world.device('silent')
    const sellerBrief = await sellerBefore(brief)
    await buy(d5, [{ ...brief, addr: addrOf(brief) }], await offerFor([{ peer: brief.peer, n: brief.n }], { price: 100 }))
    assert.equal((await brief.role.ledger.holds({ state: 'open' })).length, 1)
    await waitFor(async () => (await brief.role.ledger.holds({ state: 'open' })).length === 0, 10_000, 'the hold to expire')
    assert.equal((await brief.role.ledger.balance(world.seller)), sellerBrief + 100)
    assert.equal((await brief.role.ledger.holds({ state: 'released' }))[0]?.endReason, 'expired unanswered')

    for (const e of [escrow, faulty, brief]) assert.deepEqual((await e.role.ledger.audit()).violations, [])
  })

  it('refuses settlements it cannot tie to a hold of that device, and bad disputes, writing nothing', async function () {
    const buyerId = buyer.status().peerId
    await escrow.role.ledger.deposit(buyerId, 500)
    const owner = await world.device('owner')
    const stranger = await world.device('stranger')
    const offer = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 100 })
    const bought = await buy(owner, [{ ...escrow, addr: escrowAddr() }], offer)
    await owner.device.completePurchase({ purchase: bought.purchase })
    const before = await ledgerState(escrow.role)
    const sign = async (d: { store: KeyStore, device: SoftDevice }, kind: 'receipt' | 'dispute', body: Record<string, unknown>): Promise<Uint8Array> => {
      const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
      return encodeObject(signWithDeviceKey(kind, body, signingKey, new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)))
    }
    const offerId = signedId(offer)
    // another device cannot confirm or dispute this purchase: it is not its purchase
    await assert.rejects(settle(escrowAddr(), await sign(stranger, 'receipt', { v: 1, purchase: bought.purchase, offer: offerId, at: Date.now() })), { code: 'ERR_UNKNOWN_PURCHASE' })
    await assert.rejects(settle(escrowAddr(), await sign(owner, 'receipt', { v: 1, purchase: 'ee'.repeat(16), offer: offerId, at: Date.now() })), { code: 'ERR_UNKNOWN_PURCHASE' })
    const other = await offerFor([{ peer: escrow.peer, n: escrow.n }], { price: 7 })
    await assert.rejects(settle(escrowAddr(), await sign(owner, 'receipt', { v: 1, purchase: bought.purchase, offer: signedId(other), at: Date.now() })), { code: 'ERR_BAD_DISPUTE' })
    const { receipt } = await owner.device.receipt({ purchase: bought.purchase })
    const forged = decodeObject(receipt) as Signed<Record<string, unknown>>
    await assert.rejects(settle(escrowAddr(), encodeObject({ ...forged, body: { ...forged.body, at: 1 } })), { code: 'ERR_BAD_SIGNATURE' })
    // a key dispute that opens too few shares, or none of the manifest
    const opened = { v: 1, purchase: bought.purchase, offer: offerId, reason: 'key', openings: [], manifest: work.manifest, at: Date.now() }
    await assert.rejects(settle(escrowAddr(), await sign(owner, 'dispute', opened)), { code: 'ERR_BAD_OBJECT' })
    const noManifest = { v: 1, purchase: bought.purchase, offer: offerId, reason: 'key', openings: [{ j: 1, x: new Uint8Array(escrow.n.length) }], at: Date.now() }
    await assert.rejects(settle(escrowAddr(), await sign(owner, 'dispute', noManifest)), { code: 'ERR_BAD_OBJECT' })
    await assert.rejects(settle(escrowAddr(), encodeObject({ v: 1, kind: 'offer', body: {}, signer: { peer: new Uint8Array(1) }, sig: new Uint8Array(1) })), { code: 'ERR_BAD_DISPUTE' })
    assert.deepEqual(await ledgerState(escrow.role), before, 'nothing written')
    assert.equal((await settle(escrowAddr(), receipt)).state, 'released')
  })

  it('states a device unrevoked for a renewal, refuses forged and stale requests, and writes nothing', async function () {
    const d = await world.device('renewal')
    const before = await ledgerState(escrow.role)
    const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
    const der = new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)
    const offer = signedId(await offerFor([{ peer: escrow.peer, n: escrow.n }]))
    const nonce = new Uint8Array(randomBytes(16))
    const sign = (body: Record<string, unknown>): Uint8Array => encodeObject(signWithDeviceKey('renewal-request', body, signingKey, der))
    const renew = async (request: Uint8Array): Promise<Uint8Array> => requestRenewal({ connectionManager: buyer.streams }, escrowAddr(), request, { signal: AbortSignal.timeout(10_000) })

    const request = sign({ v: 1, offer, nonce, at: Date.now() })
    const statement = parseSignedRenewal(decodeObject(await renew(request)))
    assert.equal(await verifyPeerSigned(statement, 'renewal'), escrow.peer)
    assert.equal(statement.body.device, d.deviceId)
    assert.deepEqual(statement.body.nonce, nonce)
    assert.ok(statement.body.offer.equals(offer))
    assert.ok(statement.body.request.equals(signedId(decodeObject(request) as Signed<unknown>)))
    assert.ok(statement.body.crl >= 1)

    const forged = decodeObject(request) as Signed<Record<string, unknown>>
    forged.body = { ...forged.body, nonce: new Uint8Array(16) }
    await assert.rejects(renew(encodeObject(forged)), { code: 'ERR_BAD_SIGNATURE' })
    await assert.rejects(renew(sign({ v: 1, offer, nonce, at: Date.now() - 3_600_000 })), { code: 'ERR_CLOCK_WINDOW' })
    await assert.rejects(renew(sign({ v: 1, offer, nonce: new Uint8Array(3), at: Date.now() })), { code: 'ERR_BAD_OBJECT' })
    await assert.rejects(renew(encodeObject(await signWithPeerKey('renewal', { v: 1 }, world.sellerKey))), (err: any) => ['ERR_BAD_OBJECT', 'ERR_BAD_SIGNATURE'].includes(err.code))
    assert.deepEqual(await ledgerState(escrow.role), before, 'a renewal writes nothing')
  })

  it('resets oversized, undecodable and truncated frames on every escrow protocol and keeps serving', async function () {
    const protocols = [[INFO_PROTOCOL, INFO_LIMITS], [UNBLIND_PROTOCOL, UNBLIND_LIMITS], [SETTLE_PROTOCOL, SETTLE_LIMITS], [ACCOUNT_PROTOCOL, ACCOUNT_LIMITS], [RENEW_PROTOCOL, RENEW_LIMITS], [RESERVE_PROTOCOL, RESERVE_LIMITS]] as const
    const before = await ledgerState(escrow.role)
    const open = async (protocol: string): Promise<Stream> => buyer.libp2p.dialProtocol(escrowAddr(), protocol, { signal: AbortSignal.timeout(5000) })
    const ended = async (stream: Stream): Promise<void> => {
      await waitFor(() => stream.status !== 'open', 10_000, 'the escrow to end the stream')
      assert.equal(stream.status, 'reset')
    }
    for (const [protocol, limits] of protocols) {
      const oversized = await open(protocol)
      // only the length prefix of an oversized frame: the escrow must not wait for the rest
      oversized.send(unsignedVarint(limits.maxFrameBytes + 1))
      await ended(oversized)
      for (const body of [Uint8Array.of(FrameKind.MESSAGE, 0xff, 0xff, 0x00), Uint8Array.of(9, 1, 2, 3)]) {
        const stream = await open(protocol)
        stream.send(lp.encode.single(body))
        await ended(stream)
      }
      const truncated = await open(protocol)
      const whole = lp.encode.single(Uint8Array.of(FrameKind.MESSAGE, ...encodeObject({ v: 1, request: { a: 'x'.repeat(100) } }))).subarray()
      truncated.send(whole.subarray(0, 20))
      await truncated.close()
      await waitFor(() => truncated.status !== 'open', 10_000, 'the truncated stream to end')
    }
    // well-formed messages of the wrong shape get an error frame, not a reset
    for (const [protocol] of protocols) {
      const frames = new FrameStream(await open(protocol), INFO_LIMITS)
      await frames.writeMessage([1, 2, 3])
      await assert.rejects(frames.readMessage(), (err: any) => ['ERR_BAD_MESSAGE', 'ERR_BAD_OBJECT'].includes(err.code))
    }
    assert.deepEqual(await ledgerState(escrow.role), before)
    assert.equal((await requestEscrowInfo({ connectionManager: buyer.streams }, escrowAddr())).peer, escrow.peer)
  })
})
