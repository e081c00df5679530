// Hostile peers against the escrow, agency and market protocols over real libp2p:
// non-canonical encodings, extreme integers, a paid request replayed by another peer,
// and an unfunded device that must cost the escrow no private-key operation.
import assert from 'node:assert/strict'
import { X509Certificate, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf } from '../../device/objects/market.ts'
import { signWithDeviceKey } from '../../device/objects/signed.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { CRL_PROTOCOL } from '../../protocols/agency/crl.ts'
import { ENROLL_PROTOCOL } from '../../protocols/agency/enroll.ts'
import { ACCOUNT_PROTOCOL } from '../../protocols/escrow/account.ts'
import { INFO_PROTOCOL } from '../../protocols/escrow/info.ts'
import { RENEW_PROTOCOL } from '../../protocols/escrow/renew.ts'
import { RESERVE_PROTOCOL } from '../../protocols/escrow/reserve.ts'
import { SETTLE_PROTOCOL } from '../../protocols/escrow/settle.ts'
import { UNBLIND_PROTOCOL, requestUnblind } from '../../protocols/escrow/unblind.ts'
import { CONTENT_PROTOCOL } from '../../protocols/market/content.ts'
import { LICENSE_PROTOCOL } from '../../protocols/market/license.ts'
import { OFFER_PROTOCOL } from '../../protocols/market/offer.ts'
import { FrameKind, FrameStream, encodeMessage } from '../../protocols/toolkit/index.ts'
import { PASSPHRASE, createWorld } from '../helpers/escrow-world.ts'
import { encryptWork } from '../helpers/market.ts'
import { waitFor } from '../helpers/nodes.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { KeyStore } from '../../device/store/keystore.ts'
import type { SoftDevice } from '../../device/soft-device.ts'
import type { KeyfairNode } from '../../node/keyfair-node.ts'
import type { EscrowRole } from '../../node/roles/escrow.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'
import type { Stream } from '@libp2p/interface'

/**
 * Bodies that decode (leniently) to a request of some shape but are not strict dag-cbor:
 * each must reset the stream as a malformed frame, on every protocol
 */
export const NON_CANONICAL: Array<[string, Uint8Array]> = [
  // { aa: 1, v: 1 }: "v" sorts first (shorter key)
  ['map keys out of order', Uint8Array.of(0xa2, 0x62, 0x61, 0x61, 0x01, 0x61, 0x76, 0x01)],
  ['duplicate map keys', Uint8Array.of(0xa2, 0x61, 0x76, 0x01, 0x61, 0x76, 0x01)],
  ['undefined', Uint8Array.of(0xa2, 0x61, 0x73, 0xf7, 0x61, 0x76, 0x01)],
  ['invalid UTF-8 in a string', Uint8Array.of(0xa2, 0x61, 0x73, 0x62, 0xff, 0xfe, 0x61, 0x76, 0x01)],
  ['invalid UTF-8 in a map key', Uint8Array.of(0xa2, 0x61, 0x76, 0x01, 0x62, 0xc3, 0x28, 0x01)],
  ['an integer in more bytes than it needs', Uint8Array.of(0xa1, 0x61, 0x76, 0x18, 0x01)],
  ['a length in more bytes than it needs', Uint8Array.of(0xb8, 0x01, 0x61, 0x76, 0x01)],
  ['an integral float for an integer', Uint8Array.of(0xa1, 0x61, 0x76, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)],
  ['a half-precision float', Uint8Array.of(0xa2, 0x61, 0x66, 0xf9, 0x3e, 0x00, 0x61, 0x76, 0x01)],
  ['an indefinite-length map', Uint8Array.of(0xbf, 0x61, 0x76, 0x01, 0xff)],
  ['trailing bytes', Uint8Array.of(0xa1, 0x61, 0x76, 0x01, 0x00)],
  ['a tag other than CID', Uint8Array.of(0xa2, 0x61, 0x74, 0xc1, 0x01, 0x61, 0x76, 0x01)]
]

describe('hostile peers against the escrow, agency and market protocols', function () {
  this.timeout(180_000)
  let world: World
  let work: TestWork
  let escrow: { node: KeyfairNode, role: EscrowRole, peer: string, n: Uint8Array }
  let buyer: KeyfairNode
  let thief: KeyfairNode
  let seller: KeyfairNode
  let d: { device: SoftDevice, store: KeyStore, deviceId: string }

  before(async function () {
    world = await createWorld()
    const plain = join(world.dir, 'work.bin')
    await writeFile(plain, randomBytes(50_000))
    work = await encryptWork(world.dir, 'work', plain)
    escrow = await world.startEscrow('escrow', { unblindWorkers: 1 })
    buyer = await world.startNode('buyer', [])
    thief = await world.startNode('thief', [])
    seller = await world.startNode('seller', ['seller'])
    d = await world.device('hostile')
  })

  after(async function () {
    await world?.stop()
  })

  const escrowAddr = (): ReturnType<typeof multiaddr> => multiaddr(escrow.node.status().addresses[0]!)

  async function ledgerState (role: EscrowRole): Promise<unknown> {
    const { ledger } = role
    return { postings: await ledger.postings({ limit: 100_000 }), holds: await ledger.holds({ limit: 100_000 }), audit: await ledger.audit() }
  }

  async function offer (price: number): Promise<Signed<Offer>> {
    return createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
    })
  }

  async function request (price: number): Promise<{ request: Uint8Array, purchase: string }> {
    const p = await d.device.beginPurchase({ offer: encodeObject(await offer(price)), manifest: work.manifestBytes, buyer: buyer.status().peerId })
    return { ...(await d.device.requestShare({ purchase: p.purchase, j: 1 })), purchase: p.purchase }
  }

  /** the same request with some body fields changed, signed again by the device */
  async function forge (bytes: Uint8Array, change: (body: Record<string, unknown>) => void): Promise<Uint8Array> {
    const signed = decodeObject(bytes) as Signed<Record<string, unknown>>
    const body = { ...signed.body }
    change(body)
    const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
    const der = new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)
    return encodeObject(signWithDeviceKey('unblind-request', body, signingKey, der))
  }

  const send = async (bytes: Uint8Array, from: KeyfairNode = buyer): Promise<Uint8Array> => requestUnblind({ connectionManager: from.streams }, escrowAddr(), bytes)

  it('resets every non-canonical encoding as malformed on every protocol, and answers the canonical one', async function () {
    const targets: Array<[string, KeyfairNode]> = [
      [INFO_PROTOCOL, escrow.node], [UNBLIND_PROTOCOL, escrow.node], [SETTLE_PROTOCOL, escrow.node], [ACCOUNT_PROTOCOL, escrow.node], [RENEW_PROTOCOL, escrow.node], [RESERVE_PROTOCOL, escrow.node],
      [ENROLL_PROTOCOL, world.agency], [CRL_PROTOCOL, world.agency],
      [OFFER_PROTOCOL, seller], [CONTENT_PROTOCOL, seller], [LICENSE_PROTOCOL, seller]
    ]
    const before = await ledgerState(escrow.role)
    for (const [protocol, node] of targets) {
      const target = multiaddr(node.status().addresses[0]!)
      const open = async (): Promise<Stream> => buyer.libp2p.dialProtocol(target, protocol, { signal: AbortSignal.timeout(5000) })
      for (const [what, body] of NON_CANONICAL) {
        const stream = await open()
        const answers: unknown[] = []
        stream.addEventListener('message', evt => { answers.push(evt.data) })
        stream.send(lp.encode.single(Uint8Array.of(FrameKind.MESSAGE, ...body)))
        await waitFor(() => stream.status !== 'open', 10_000, `${protocol} to end ${what}`)
        assert.equal(stream.status, 'reset', `${protocol}: ${what} resets the stream`)
        assert.deepEqual(answers, [], `${protocol}: ${what} gets no answer`)
      }
      // the canonical { v: 1 } is decoded and answered (an answer or a refusal frame, never a reset)
      const frames = new FrameStream(await open(), { maxFrameBytes: 2 * 1024 * 1024, readTimeoutMs: 10_000 })
      await frames.writeMessage({ v: 1 })
      try {
        await frames.readMessage()
      } catch (err: any) {
        assert.equal(err.remote, true, `${protocol}: { v: 1 } gets an answer or a refusal, not ${err.code}`)
      }
    }
    assert.deepEqual(await ledgerState(escrow.role), before)
  })

  it('gives extreme integers their error code, never a reset', async function () {
    await escrow.role.ledger.deposit(buyer.status().peerId, 1000)
    const { request: genuine } = await request(10)
    const before = await ledgerState(escrow.role)
    const cases: Array<[string, (b: Record<string, unknown>) => void]> = [
      ['ERR_CLOCK_WINDOW', b => { b.at = Number.MAX_SAFE_INTEGER }],
      ['ERR_CLOCK_WINDOW', b => { b.at = 8.64e15 + 1 }],
      ['ERR_CLOCK_WINDOW', b => { b.at = 0 }],
      ['ERR_BAD_OBJECT', b => { b.at = -1 }],
      ['ERR_BAD_OBJECT', b => { b.at = 2 ** 53 }],
      ['ERR_BAD_OBJECT', b => { b.at = 1.5 }],
      ['ERR_WRONG_AMOUNT', b => { b.amount = Number.MAX_SAFE_INTEGER }],
      ['ERR_BAD_OBJECT', b => { b.amount = -1 }],
      ['ERR_BAD_OBJECT', b => { b.j = Number.MAX_SAFE_INTEGER }],
      ['ERR_BAD_OBJECT', b => { b.j = 0 }]
    ]
    for (const [code, change] of cases) {
      await assert.rejects(send(await forge(genuine, change)), (err: any) => {
        assert.equal(err.code, code, `${change.toString()}: ${err.code} ${err.message}`)
        assert.equal(err.remote, true, 'an error frame, not a reset')
        return true
      })
    }
    // an offer whose price and expiry are the largest safe integers
    const dear = await createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price: Number.MAX_SAFE_INTEGER, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Number.MAX_SAFE_INTEGER },
      title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
    })
    await assert.rejects(send(await forge(genuine, b => { b.offer = dear; b.amount = Number.MAX_SAFE_INTEGER })), { code: 'ERR_INSUFFICIENT_FUNDS' })
    assert.deepEqual(await ledgerState(escrow.role), before)
  })

  it('refuses a paid request replayed by another peer: nothing written, no answer', async function () {
    const buyerId = buyer.status().peerId
    await escrow.role.ledger.deposit(buyerId, 100)
    const { request: paid } = await request(20)
    const answer = await send(paid)
    const after = await ledgerState(escrow.role)
    await assert.rejects(send(paid, thief), (err: any) => {
      assert.equal(err.code, 'ERR_NOT_BUYER')
      assert.equal(err.remote, true)
      assert.ok(!err.message.includes(Buffer.from(answer).toString('base64')))
      return true
    })
    assert.deepEqual(await ledgerState(escrow.role), after, 'nothing written')
    // the buyer still gets its own answer again, uncharged
    assert.deepEqual(await send(paid), answer)
    assert.deepEqual(await ledgerState(escrow.role), after)
  })

  it('costs no private-key operation for an unfunded device\'s request, and one for a funded one', async function () {
    const buyerId = buyer.status().peerId
    const balance = (await escrow.role.ledger.balance(buyerId))
    const { request: unfunded } = await request(balance + 1)
    const before = await ledgerState(escrow.role)
    const operations = escrow.role.escrow.privateOperations
    for (let i = 0; i < 5; i++) await assert.rejects(send(unfunded), { code: 'ERR_INSUFFICIENT_FUNDS' })
    assert.equal(escrow.role.escrow.privateOperations, operations, 'no private-key operation for a refused request')
    assert.deepEqual(await ledgerState(escrow.role), before)
    const { request: funded } = await request(1)
    await send(funded)
    assert.equal(escrow.role.escrow.privateOperations, operations + 1)
    assert.equal((await escrow.role.ledger.balance(buyerId)), balance - 1)
  })

  it('takes a settlement larger than any receipt only from a buyer with an open hold', async function () {
    const big = encodeMessage({ v: 1, settlement: { kind: 'dispute', pad: new Uint8Array(512 * 1024) } })
    const attempt = async (from: KeyfairNode): Promise<Stream> => {
      const stream = await from.libp2p.dialProtocol(escrowAddr(), SETTLE_PROTOCOL, { signal: AbortSignal.timeout(5000) })
      // the prefix and the kind only: the escrow judges the length before any body arrives
      const frame = lp.encode.single(new Uint8ArrayList(Uint8Array.of(FrameKind.MESSAGE), big)).subarray()
      stream.send(frame.subarray(0, 6))
      return stream
    }
    const stranger = await attempt(thief)
    await waitFor(() => stranger.status !== 'open', 5000, 'the stranger\'s settlement to be refused')
    assert.equal(stranger.status, 'reset')
    // the buyer holds open holds here: its frame is admitted and waits for its body
    assert.ok((await escrow.role.ledger.holds({ buyer: buyer.status().peerId, state: 'open', limit: 1 })).length > 0)
    const holder = await attempt(buyer)
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.equal(holder.status, 'open')
    holder.abort(new Error('done'))
  })
})
