import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { DeviceClient } from '../../node/device/client.ts'
import { answerRequest, createEscrows, encryptWork, offerWork } from '../helpers/market.ts'
import { createTestAgency } from '../helpers/test-agency.ts'
import type { TestEscrow, TestWork } from '../helpers/market.ts'
import type { TestAgency } from '../helpers/test-agency.ts'
import type { PrivateKey } from '@libp2p/interface'

const PASSPHRASE = 'batched requests passphrase'
const FAST_KDF = { N: 2 ** 14, r: 8, p: 1 }

describe('sealed device: batched share requests and checked shares kept in memory', function () {
  this.timeout(120_000)
  let dir: string
  let agency: TestAgency
  let escrows: TestEscrow[]
  let sellerKey: PrivateKey
  let work: TestWork
  let device: DeviceClient | undefined

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-batch-'))
    agency = createTestAgency()
    escrows = await createEscrows(5)
    sellerKey = await generateKeyPair('Ed25519')
    await writeFile(join(dir, 'work.bin'), randomBytes(200 * 1024 + 3))
    work = await encryptWork(dir, 'work', join(dir, 'work.bin'))
  })

  after(async function () {
    await device?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function open (store: string, init: boolean): Promise<DeviceClient> {
    // one device process at a time: the one a test left running is stopped first
    await device?.stop()
    device = new DeviceClient({ store })
    await device.start()
    if (init) {
      await device.initialise({ passphrase: PASSPHRASE, bits: 2048, kdf: FAST_KDF })
      await device.installCertificates(agency.issueDevice(await device.certificateRequests()))
    } else {
      await device.unlock({ passphrase: PASSPHRASE })
    }
    return device
  }

  it('signs t requests in one call, returns the same requests when asked again, and refuses bad lists', async function () {
    const store = join(dir, 'device-a')
    const d = await open(store, true)
    const offer = await offerWork(sellerKey, work, escrows, { t: 3 })
    const p = await d.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: 'b' })
    const { requests } = await d.requestShares({ purchase: p.purchase, js: [1, 3, 5] })
    assert.equal(requests.length, 3)
    assert.equal(new Set(requests.map(r => Buffer.from(r).toString('hex'))).size, 3)
    const again = await d.requestShares({ purchase: p.purchase, js: [5, 1] })
    assert.deepEqual(again.requests, [requests[2], requests[0]])
    assert.deepEqual((await d.requestShare({ purchase: p.purchase, j: 3 })).request, requests[1])
    await assert.rejects(d.requestShares({ purchase: p.purchase, js: [2, 2] }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    await assert.rejects(d.requestShares({ purchase: p.purchase, js: [1, 6] }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    // every blinding factor is sealed before the requests leave: a restarted device answers with the same bytes
    await d.stop()
    const restarted = await open(store, false)
    assert.deepEqual((await restarted.requestShares({ purchase: p.purchase, js: [1, 3, 5] })).requests, requests)
    await restarted.stop()
    device = undefined
  })

  it('a device restarted after checking answers asks again and rebuilds the key from the replayed answers', async function () {
    const store = join(dir, 'device-b')
    const d = await open(store, true)
    const offer = await offerWork(sellerKey, work, escrows, { t: 3 })
    const p = await d.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: 'b' })
    const { requests } = await d.requestShares({ purchase: p.purchase, js: [1, 2, 3] })
    const answers = await Promise.all(requests.map(async (r, i) => (await answerRequest(escrows[i]!, r, agency.trust())).answer))
    const recordFiles = async (): Promise<Record<string, string>> => {
      const out: Record<string, string> = {}
      for (const name of await readdir(join(store, 'purchase'))) out[name] = (await readFile(join(store, 'purchase', name))).toString('hex')
      return out
    }
    const sealed = await recordFiles()
    for (const [i, answer] of answers.entries()) {
      assert.deepEqual(await d.acceptAnswer({ purchase: p.purchase, j: i + 1, answer }), { accepted: true, have: i + 1, need: 3 })
    }
    // checking an answer writes nothing: the escrow replays a paid request, so it is not worth a sync
    assert.deepEqual(await recordFiles(), sealed)
    assert.deepEqual((await d.purchases()).find(x => x.purchase === p.purchase)?.accepted, [1, 2, 3])
    await d.stop()

    const restarted = await open(store, false)
    const info = (await restarted.purchases()).find(x => x.purchase === p.purchase)!
    assert.equal(info.state, 'open')
    assert.deepEqual(info.accepted, [])
    assert.deepEqual(info.pending, [1, 2, 3])
    // the same requests again, and the escrows' replayed answers (the same bytes) complete the purchase
    assert.deepEqual((await restarted.requestShares({ purchase: p.purchase, js: [1, 2, 3] })).requests, requests)
    for (const [i, answer] of answers.entries()) await restarted.acceptAnswer({ purchase: p.purchase, j: i + 1, answer })
    const licence = await restarted.completePurchase({ purchase: p.purchase })
    assert.equal(licence.content, work.contentId)
    const out = join(dir, 'played.bin')
    await restarted.play({ content: work.contentId, manifest: work.manifestBytes, input: work.ciphertextFile, output: out })
    assert.deepEqual(await readFile(out), await readFile(join(dir, 'work.bin')))
  })

  it('draws blinding factors ahead of a purchase, uses each for one request only, and refuses a bad offer', async function () {
    const store = join(dir, 'device-c')
    const d = await open(store, true)
    const offer = await offerWork(sellerKey, work, escrows, { t: 3 })
    const offerBytes = encodeObject(offer)
    await assert.rejects(d.prepareShares({ offer: new Uint8Array([1, 2, 3]) }), (err: any) => typeof err.code === 'string' && err.code.startsWith('ERR_'))
    assert.deepEqual(await d.prepareShares({ offer: offerBytes }), { preparing: 3 })
    const blinded = async (): Promise<string[]> => {
      // ahead of every purchase, as the buyer does: the second one finds the first's factors used up
      await d.prepareShares({ offer: offerBytes })
      const p = await d.beginPurchase({ offer: offerBytes, manifest: work.manifestBytes, buyer: 'b' })
      const { requests } = await d.requestShares({ purchase: p.purchase, js: [1, 2, 3] })
      // a factor for the wrong share or modulus would fail the device's own check of honest answers
      for (const [i, request] of requests.entries()) {
        const verdict = await d.acceptAnswer({ purchase: p.purchase, j: i + 1, answer: (await answerRequest(escrows[i]!, request, agency.trust())).answer })
        assert.deepEqual(verdict, { accepted: true, have: i + 1, need: 3 })
      }
      assert.equal((await d.completePurchase({ purchase: p.purchase })).content, work.contentId)
      return requests.map(r => Buffer.from((decodeObject(r) as any).body.b).toString('hex'))
    }
    const first = await blinded()
    const second = await blinded()
    for (const [i, b] of first.entries()) assert.notEqual(second[i], b, `share ${i + 1} blinded the same way twice`)
    await d.lock()
    await assert.rejects(d.prepareShares({ offer: offerBytes }), { code: 'ERR_DEVICE_LOCKED' })
  })

  it('looks up one purchase by id, or the purchases of one offer, after a restart too, and refuses bad ids', async function () {
    const store = join(dir, 'device-lookup')
    const d = await open(store, true)
    const offerA = encodeObject(await offerWork(sellerKey, work, escrows, { t: 1 }))
    const offerB = encodeObject(await offerWork(sellerKey, work, escrows, { t: 2 }))
    const a1 = await d.beginPurchase({ offer: offerA, manifest: work.manifestBytes, buyer: 'b' })
    const b1 = await d.beginPurchase({ offer: offerB, manifest: work.manifestBytes, buyer: 'b' })
    const a2 = await d.beginPurchase({ offer: offerA, manifest: work.manifestBytes, buyer: 'b' })
    await d.requestShare({ purchase: a2.purchase, j: 1 })
    const check = async (dev: DeviceClient): Promise<void> => {
      const all = await dev.purchases()
      assert.equal(all.length, 3)
      for (const info of all) assert.deepEqual(await dev.purchase({ purchase: info.purchase }), info)
      assert.deepEqual((await dev.purchase({ purchase: a2.purchase })).pending, [1])
      assert.deepEqual((await dev.purchases({ offer: a1.offer })).map(p => p.purchase).sort(), [a1.purchase, a2.purchase].sort())
      assert.deepEqual((await dev.purchases({ offer: b1.offer })).map(p => p.purchase), [b1.purchase])
      assert.deepEqual(await dev.purchases({ offer: 'bafyreinotanofferofthisdevice' }), [])
      await assert.rejects(dev.purchase({ purchase: '0'.repeat(32) }), { code: 'ERR_UNKNOWN_PURCHASE' })
      await assert.rejects(dev.purchase({ purchase: '../purchase/x' }), { code: 'ERR_UNKNOWN_PURCHASE' })
      await assert.rejects(dev.purchase({ purchase: 'f'.repeat(65) }), { code: 'ERR_BAD_DEVICE_REQUEST' })
      await assert.rejects(dev.purchases({ offer: 7 as any }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    }
    await check(d)
    // a restarted device opens the one record asked for from its sealed store
    const restarted = await open(store, false)
    await check(restarted)
    await restarted.lock()
    await assert.rejects(restarted.purchase({ purchase: a1.purchase }), { code: 'ERR_DEVICE_LOCKED' })
  })
})
