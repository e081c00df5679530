// Disputes over real libp2p (escrow nodes with their SQLite ledgers, an in-process sealed
// device): what a key dispute discloses. After a device-bound purchase is disputed, an
// attempt to rebuild K from EVERYTHING the escrows hold (their private keys, every row
// of their ledgers, every dispute they received, the offer and the licence) fails; the
// same attempt over an open offer succeeds. And a seller whose K_dev wrap is wrong is
// made to refund by a dispute that opens only that wrap.
import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { multiaddr } from '@multiformats/multiaddr'
import {
  combineShares, devicePartCommitment, deviceKeyFromOpening, escrowPartCommitment, keyCommitment, os2ip, unwrapShare,
  verifyKeyCommitment, wrapDeviceKey, xorBytes
} from '../../device/crypto/index.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf, parseSignedDispute } from '../../device/objects/market.ts'
import { signWithDeviceKey, signWithPeerKey, signedId } from '../../device/objects/signed.ts'
import { EscrowFiles } from '../../node/escrow/state.ts'
import { EscrowKey } from '../../node/escrow/unblind.ts'
import { createLicence, createOffer, wrapShares } from '../../node/seller/offers.ts'
import { requestSettle } from '../../protocols/escrow/settle.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import { PASSPHRASE, createWorld } from '../helpers/escrow-world.ts'
import { encryptWork } from '../helpers/market.ts'
import type { Dispute, Licence, Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { SoftDevice } from '../../device/soft-device.ts'
import type { KeyStore } from '../../device/store/keystore.ts'
import type { KeyfairNode } from '../../node/keyfair-node.ts'
import type { EscrowRole } from '../../node/roles/escrow.ts'
import type { SettleAnswer } from '../../protocols/escrow/settle.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'
import { ESCROW_KEY } from '../../node/keys/keystore.ts'
import { testKeys } from '../helpers/keys.ts'

const PRICE = 100

interface TestEscrowNode { name: string, node: KeyfairNode, role: EscrowRole, peer: string, n: Uint8Array }
type TestDevice = { device: SoftDevice, store: KeyStore, deviceId: string }

/** Every row of every table of an SQLite file, each value as bytes */
function ledgerRows (file: string): Uint8Array[] {
  const db = new DatabaseSync(file, { readOnly: true })
  try {
    const out: Uint8Array[] = []
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>
    for (const { name } of tables) {
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
        for (const value of Object.values(row)) {
          if (value instanceof Uint8Array) out.push(new Uint8Array(value))
          else if (value != null) out.push(Buffer.from(String(value)))
        }
      }
    }
    return out
  } finally {
    db.close()
  }
}

/** What the escrows hold together, for the attempt to rebuild K */
interface EscrowHoldings {
  keys: EscrowKey[]
  /** every stored row and every message received (requests, answers, disputes) */
  blobs: Uint8Array[]
  disputes: Dispute[]
  offer: Signed<Offer>
  licence?: Signed<Licence>
  manifest: TestWork['manifest']
}

/**
 * The collusion of every escrow: unwrap each share any of them can (its own key gives
 * x_j = c_j^d_T; disputes add openings), combine, then try the result alone and XORed
 * with every 32-byte value in anything they hold or that a dispute disclosed (K_dev in
 * the clear, or decoded from an opened wrap). Returns K if any candidate matches kc.
 */
function attemptToRebuildK (h: EscrowHoldings): Uint8Array | undefined {
  const { terms, kc } = h.offer.body
  const sets = [{ shares: h.offer.body.shares, salt: h.offer.body.salt }]
  if (h.licence != null) sets.push({ shares: h.licence.body.shares, salt: h.licence.body.salt })
  const xs = new Map<number, Uint8Array[]>()
  for (const [i, e] of terms.escrows.entries()) {
    const own = h.keys.find(k => Buffer.from(k.modulus).equals(Buffer.from(e.n)))
    if (own == null) continue
    for (const set of sets) if (set.shares[i] != null) xs.set(i + 1, [...(xs.get(i + 1) ?? []), own.unblind(set.shares[i]!.c, terms)])
  }
  for (const d of h.disputes) for (const o of d.openings) xs.set(o.j, [...(xs.get(o.j) ?? []), o.x])
  const secrets: Uint8Array[] = []
  for (const set of sets) {
    const shares: Uint8Array[] = []
    for (const share of set.shares) {
      for (const x of xs.get(share.j) ?? []) {
        try {
          shares.push(unwrapShare({ x: os2ip(x), n: os2ip(terms.escrows[share.j - 1]!.n), j: share.j, dem: share.dem, contentSalt: h.manifest.salt, offerSalt: set.salt }))
          break
        } catch {}
      }
    }
    if (shares.length >= terms.t) secrets.push(combineShares(shares, terms.t))
  }
  const partners = new Map<string, Uint8Array>()
  const add = (v: Uint8Array): void => { partners.set(Buffer.from(v).toString('hex'), v) }
  for (const blob of h.blobs) for (let i = 0; i + 32 <= blob.length; i++) add(blob.subarray(i, i + 32))
  for (const d of h.disputes) {
    if (d.kDev != null) add(d.kDev)
    const decoded = d.kDevWrap?.m != null ? deviceKeyFromOpening(d.kDevWrap.m) : undefined
    if (decoded != null) add(decoded)
  }
  for (const secret of secrets) {
    if (verifyKeyCommitment(secret, kc)) return secret
    for (const v of partners.values()) {
      const candidate = xorBytes(secret, v)
      if (verifyKeyCommitment(candidate, kc)) return candidate
    }
  }
  return undefined
}

describe('disputes that disclose no more than they must, over real libp2p', function () {
  this.timeout(180_000)
  let world: World
  let work: TestWork
  let escrows: TestEscrowNode[]
  let buyer: KeyfairNode

  before(async function () {
    world = await createWorld()
    await writeFile(join(world.dir, 'work.bin'), randomBytes(150_000))
    work = await encryptWork(world.dir, 'work', join(world.dir, 'work.bin'), 32 * 1024)
    escrows = []
    for (const name of ['escrow-1', 'escrow-2', 'escrow-3']) escrows.push({ name, ...(await world.startEscrow(name)) })
    buyer = await world.startNode('buyer', [])
    for (const e of escrows) (await e.role.ledger.deposit(buyer.status().peerId, 1000))
  })

  after(async function () {
    await world?.stop()
  })

  const addrOf = (e: TestEscrowNode): ReturnType<typeof multiaddr> => multiaddr(e.node.status().addresses[0]!)
  const settle = async (e: TestEscrowNode, bytes: Uint8Array): Promise<SettleAnswer> => requestSettle({ connectionManager: buyer.streams }, addrOf(e), bytes)
  const balances = async (): Promise<number[]> => Promise.all(escrows.map(async e => e.role.ledger.balance(buyer.status().peerId)))
  const ledgerState = async (e: TestEscrowNode): Promise<unknown> => ({ postings: await e.role.ledger.postings({ limit: 100_000 }), holds: await e.role.ledger.holds({ limit: 100_000 }), audit: await e.role.ledger.audit() })

  /** 2-of-3 over the three escrows: device-bound (no open shares) unless `open` */
  async function offer (open: boolean): Promise<Signed<Offer>> {
    return createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price: PRICE, currency: 'EUR', escrows: escrows.map(e => ({ peer: e.peer, n: e.n })), t: 2, expiry: Date.now() + 3_600_000 },
      title: open ? 'open' : 'bound', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open
    })
  }

  async function encryptionKeyOf (d: TestDevice): Promise<X509Certificate> {
    return new X509Certificate((await d.device.certificates()).encryption)
  }

  /** Pays escrows 1 and 2 and completes; returns the purchase id (or the completion's error) */
  async function buy (d: TestDevice, o: Signed<Offer>, licence?: Signed<Licence>): Promise<{ purchase: string, completed: unknown }> {
    const p = await d.device.beginPurchase({ offer: encodeObject(o), manifest: work.manifestBytes, ...(licence != null ? { licence: encodeObject(licence) } : {}), buyer: buyer.status().peerId })
    const { requests } = await d.device.requestShares({ purchase: p.purchase, js: [1, 2] })
    for (const [i, request] of requests.entries()) {
      const answer = await requestUnblind({ connectionManager: buyer.streams }, addrOf(escrows[i]!), request)
      assert.equal((await d.device.acceptAnswer({ purchase: p.purchase, j: i + 1, answer })).accepted, true)
    }
    let completed: unknown
    try {
      completed = await d.device.completePurchase({ purchase: p.purchase })
    } catch (err) {
      completed = err
    }
    return { purchase: p.purchase, completed }
  }

  /** Everything the escrows hold once they judged `disputes` */
  async function holdings (o: Signed<Offer>, disputes: Uint8Array[], licence?: Signed<Licence>): Promise<EscrowHoldings> {
    const keys: EscrowKey[] = []
    const blobs: Uint8Array[] = [...disputes, encodeObject(o)]
    for (const e of escrows) {
      const files = new EscrowFiles(join(world.dir, e.name))
      keys.push(new EscrowKey((await (await testKeys(join(world.dir, e.name))).getPrivateKey(ESCROW_KEY))!))
      blobs.push(...ledgerRows(files.ledgerFile))
    }
    if (licence != null) blobs.push(encodeObject(licence))
    const parsed = disputes.map(d => parseSignedDispute(decodeObject(d)).body)
    return { keys, blobs, disputes: parsed, offer: o, ...(licence != null ? { licence } : {}), manifest: work.manifest }
  }

  it('a key dispute over a good device-bound purchase opens K_esc only: refused, and K cannot be rebuilt from all the escrows hold', async function () {
    const d = await world.device('honest-bound')
    const o = await offer(false)
    const cert = await encryptionKeyOf(d)
    const licence = await createLicence({ sellerKey: world.sellerKey, offer: o, key: work.secrets.key, contentSalt: work.secrets.salt, device: { id: d.deviceId, encryptionKey: cert.publicKey } })
    const before = await balances()
    const { purchase, completed } = await buy(d, o, licence)
    assert.equal((completed as { content?: string }).content, work.contentId, String(completed))
    assert.deepEqual(await balances(), [before[0]! - PRICE, before[1]! - PRICE, before[2]!])

    // the buyer disputes anyway: its device opens the shares of K_esc, never K_dev
    const { dispute } = await d.device.dispute({ purchase, reason: 'key' })
    const body = parseSignedDispute(decodeObject(dispute)).body
    assert.equal(body.part, 'escrow')
    assert.deepEqual(body.openings.map(x => x.j), [1, 2])
    assert.equal(body.kDev, undefined)
    assert.equal(body.kDevWrap, undefined)
    const sellerBefore = await Promise.all(escrows.map(async e => e.role.ledger.balance(world.seller)))
    for (const e of escrows.slice(0, 2)) {
      const verdict = await settle(e, dispute)
      assert.deepEqual([verdict.state, verdict.refused], ['released', true], verdict.reason)
    }
    assert.deepEqual(await Promise.all(escrows.map(async (e, i) => (await e.role.ledger.balance(world.seller)) - sellerBefore[i]!)), [PRICE, PRICE, 0])
    assert.deepEqual(await balances(), [before[0]! - PRICE, before[1]! - PRICE, before[2]!], 'no refund')

    // everything every escrow holds (and the dispute itself) does not give K
    const held = await holdings(o, [dispute], licence)
    assert.equal(attemptToRebuildK(held), undefined, 'K rebuilt from what the escrows hold')
    // positive control: the same attempt, had K_dev been disclosed, finds K
    assert.deepEqual(attemptToRebuildK({ ...held, blobs: [...held.blobs, await trueDeviceKey(d, licence)] }), work.secrets.key)
    for (const e of escrows) assert.deepEqual((await e.role.ledger.audit()).violations, [])
  })

  /** K_dev as the device holds it: from its key store, for the positive control only */
  async function trueDeviceKey (d: TestDevice, licence: Signed<Licence>): Promise<Uint8Array> {
    const { unwrapDeviceKey } = await import('../../device/crypto/index.ts')
    return unwrapDeviceKey(licence.body.kDev, (await d.store.open(Buffer.from(PASSPHRASE))).encryptionKey)
  }

  it('the same attempt over an open offer\'s key dispute finds K, and no ledger keeps the openings', async function () {
    const d = await world.device('honest-open')
    const o = await offer(true)
    const { purchase, completed } = await buy(d, o)
    assert.equal((completed as { content?: string }).content, work.contentId, String(completed))
    const { dispute } = await d.device.dispute({ purchase, reason: 'key' })
    const body = parseSignedDispute(decodeObject(dispute)).body
    assert.equal(body.part, undefined)
    for (const e of escrows.slice(0, 2)) assert.equal((await settle(e, dispute)).refused, true)
    const held = await holdings(o, [dispute])
    assert.deepEqual(attemptToRebuildK(held), work.secrets.key)
    // the escrows keep the verdict, not the openings it was judged on
    for (const e of escrows) {
      const stored = Buffer.concat(ledgerRows(new EscrowFiles(join(world.dir, e.name)).ledgerFile))
      for (const opening of body.openings) assert.equal(stored.includes(Buffer.from(opening.x)), false, `opening ${opening.j} stored by ${e.name}`)
    }
  })

  it('a seller whose parts each match their commitments but not K is refunded by part both (which discloses K, its own doing)', async function () {
    const d = await world.device('inconsistent')
    const o = await offer(false)
    const cert = await encryptionKeyOf(d)
    // a licence made for another key than the one the offer commits to
    const licence = await createLicence({ sellerKey: world.sellerKey, offer: o, key: new Uint8Array(randomBytes(32)), contentSalt: work.secrets.salt, device: { id: d.deviceId, encryptionKey: cert.publicKey } })
    const before = await balances()
    const { purchase, completed } = await buy(d, o, licence)
    assert.equal((completed as { code?: string }).code, 'ERR_KEY_COMMITMENT')
    assert.equal((await d.device.purchase({ purchase })).fault, 'both')
    const { dispute } = await d.device.dispute({ purchase, reason: 'key' })
    const body = parseSignedDispute(decodeObject(dispute)).body
    assert.deepEqual([body.part, body.openings.length, body.kDev?.length, body.kDevWrap], ['both', 2, 32, undefined])
    for (const e of escrows.slice(0, 2)) {
      const verdict = await settle(e, dispute)
      assert.deepEqual([verdict.state, verdict.refused], ['refunded', false], verdict.reason)
    }
    assert.deepEqual(await balances(), before)
  })

  it('a seller whose K_dev wrap is wrong (K_esc right) refunds a dispute that opens only the wrap; bad shapes change nothing', async function () {
    const d = await world.device('wronged')
    const o = await offer(false)
    const cert = await encryptionKeyOf(d)
    // the seller commits to K_dev and K_esc = K ⊕ K_dev, and wraps another value to the device
    const kDev = new Uint8Array(randomBytes(32))
    const kEsc = xorBytes(work.secrets.key, kDev)
    const salt = new Uint8Array(randomBytes(16))
    const licence = await signWithPeerKey('licence', {
      v: 1,
      offer: signedId(o),
      device: d.deviceId,
      salt,
      shares: wrapShares(kEsc, o.body.terms, work.secrets.salt, salt),
      kDev: wrapDeviceKey(new Uint8Array(randomBytes(32)), cert.publicKey),
      kcEsc: escrowPartCommitment(kEsc),
      kcDev: devicePartCommitment(kDev)
    } satisfies Licence, world.sellerKey) as Signed<Licence>
    const before = await balances()
    const { purchase, completed } = await buy(d, o, licence)
    assert.equal((completed as { code?: string }).code, 'ERR_KEY_COMMITMENT')
    const info = await d.device.purchase({ purchase })
    assert.deepEqual([info.state, info.fault], ['failed', 'device'])

    // malformed disputes signed by this device: refused with ERR_BAD_DISPUTE, nothing written
    const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
    const signingCert = new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)
    const { dispute } = await d.device.dispute({ purchase, reason: 'key' })
    const body = parseSignedDispute(decodeObject(dispute)).body
    assert.equal(body.part, 'device')
    assert.deepEqual(body.openings, [], 'no share is opened')
    assert.equal(body.kDev, undefined)
    assert.equal(body.kDevWrap?.m?.length, 256)
    /** the dispute with fields changed (undefined: removed), signed again by this device */
    const resign = (change: Record<string, unknown>): Uint8Array => {
      const changed: Record<string, unknown> = { ...body, ...change }
      for (const key of Object.keys(changed)) if (changed[key] === undefined) delete changed[key]
      return encodeObject(signWithDeviceKey('dispute', changed, signingKey, signingCert))
    }
    const ledgersBefore = await Promise.all(escrows.map(ledgerState))
    const bad: Array<[string, Uint8Array]> = [
      ['no part', resign({ part: undefined, kDevWrap: undefined, openings: [{ j: 1, x: new Uint8Array(256) }, { j: 2, x: new Uint8Array(256) }] })],
      ['part device with openings', resign({ openings: [{ j: 1, x: new Uint8Array(256) }] })],
      ['part device without the wrap', resign({ kDevWrap: undefined })],
      ['part device with K_dev in the clear', resign({ kDev: new Uint8Array(32) })]
    ]
    for (const [what, bytes] of bad) {
      await assert.rejects(settle(escrows[0]!, bytes), (err: any) => {
        assert.equal(err.code, 'ERR_BAD_DISPUTE', `${what}: ${String(err.code)} ${String(err.message)}`)
        return true
      })
    }
    assert.deepEqual(await Promise.all(escrows.map(ledgerState)), ledgersBefore, 'nothing written by a malformed dispute')

    for (const e of escrows.slice(0, 2)) {
      const verdict = await settle(e, dispute)
      assert.deepEqual([verdict.state, verdict.refused], ['refunded', false], verdict.reason)
    }
    assert.deepEqual(await balances(), before, 'every share refunded')
    // the wrap's opening discloses a value that is not K_dev: K still cannot be rebuilt
    assert.equal(attemptToRebuildK(await holdings(o, [dispute], licence)), undefined)
    assert.deepEqual(keyCommitment(work.secrets.key), o.body.kc)
    for (const e of escrows) assert.deepEqual((await e.role.ledger.audit()).violations, [])
  })
})
