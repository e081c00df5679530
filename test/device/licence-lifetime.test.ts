// A licence plays offline for its offer's lifetime; past it the device plays again only
// after an escrow of the offer has signed a statement answering the device's own
// renewal request. Real device process, real offers and escrow keys.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { parseSignedRenewalRequest } from '../../device/objects/market.ts'
import { signWithPeerKey, signedId, verifyDeviceSigned } from '../../device/objects/signed.ts'
import { DeviceClient } from '../../node/device/client.ts'
import { answerRequest, createEscrows, encryptWork, offerWork } from '../helpers/market.ts'
import { createTestAgency } from '../helpers/test-agency.ts'
import type { Renewal, RenewalRequest } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { TestEscrow, TestWork } from '../helpers/market.ts'
import type { TestAgency } from '../helpers/test-agency.ts'
import type { PrivateKey } from '@libp2p/interface'

const TTL_MS = 1500

describe('licence lifetime and renewal in the sealed device', function () {
  this.timeout(120_000)
  let dir: string
  let agency: TestAgency
  let escrows: TestEscrow[]
  let sellerKey: PrivateKey
  let work: TestWork
  let device: DeviceClient
  let deviceId: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-lifetime-'))
    agency = createTestAgency()
    escrows = await createEscrows(2)
    sellerKey = await generateKeyPair('Ed25519')
    const plain = join(dir, 'work.bin')
    await writeFile(plain, randomBytes(200 * 1024 + 5))
    work = await encryptWork(dir, 'work', plain)
    device = new DeviceClient({ store: join(dir, 'device') })
    await device.start()
    deviceId = (await device.initialise({ passphrase: 'a long passphrase', bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })).deviceId
    await device.installCertificates(agency.issueDevice(await device.certificateRequests()))
  })

  after(async function () {
    await device?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const play = async (name: string): Promise<{ bytes: number }> =>
    device.play({ content: work.contentId, manifest: work.manifestBytes, input: work.ciphertextFile, output: join(dir, name) })

  /** An escrow's statement answering `request`, as the escrow protocol signs it */
  async function statement (signer: PrivateKey, request: Signed<RenewalRequest>, change: Partial<Renewal> = {}): Promise<Uint8Array> {
    const body: Renewal = { v: 1, request: signedId(request), device: deviceId, offer: request.body.offer, nonce: request.body.nonce, crl: 1, at: Date.now(), ...change }
    return encodeObject(await signWithPeerKey('renewal', body, signer))
  }

  async function renewalRequest (): Promise<Signed<RenewalRequest>> {
    const { request, escrows: named } = await device.renewalRequest({ content: work.contentId })
    assert.deepEqual(named, escrows.map(e => e.peer), 'the escrows of the offer, in its order')
    const parsed = parseSignedRenewalRequest(decodeObject(request))
    verifyDeviceSigned(parsed, 'renewal-request', der => agency.trust().verify(der, { purpose: 'device-signing' }))
    return parsed
  }

  it('plays until the lifetime ends, refuses after it, and plays again once renewed', async function () {
    const offer = await offerWork(sellerKey, work, escrows, { t: 1, licenceTtl: TTL_MS })
    const p = await device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: 'b' })
    const { request } = await device.requestShare({ purchase: p.purchase, j: 1 })
    await device.acceptAnswer({ purchase: p.purchase, j: 1, answer: (await answerRequest(escrows[0]!, request, agency.trust())).answer })
    const licence = await device.completePurchase({ purchase: p.purchase })
    assert.equal(licence.licenceTtl, TTL_MS)
    assert.equal(licence.playUntil, licence.purchasedAt + TTL_MS)
    assert.deepEqual((await device.library()).map(l => l.playUntil), [licence.playUntil])
    assert.equal((await play('first.bin')).bytes, 200 * 1024 + 5)

    await new Promise(resolve => setTimeout(resolve, Math.max(0, licence.playUntil - Date.now()) + 50))
    await assert.rejects(play('expired.bin'), { code: 'ERR_LICENCE_EXPIRED' })
    await assert.rejects(stat(join(dir, 'expired.bin')), { code: 'ENOENT' }, 'nothing is written past the lifetime')

    // statements that do not renew: each refused, the licence unchanged
    const stranger = await generateKeyPair('Ed25519')
    const bad: Array<[string, (r: Signed<RenewalRequest>) => Promise<Uint8Array>]> = [
      ['signed by a peer that is no escrow of the offer', async r => statement(stranger, r)],
      ['for another nonce', async r => statement(escrows[1]!.peerKey, r, { nonce: new Uint8Array(16) })],
      ['for another device', async r => statement(escrows[1]!.peerKey, r, { device: 'f'.repeat(32) })],
      ['for another request', async r => statement(escrows[1]!.peerKey, r, { request: signedId(offer) })]
    ]
    for (const [what, make] of bad) {
      const r = await renewalRequest()
      await assert.rejects(device.renew({ content: work.contentId, renewal: await make(r) }), { code: 'ERR_BAD_RENEWAL' }, what)
      assert.equal((await device.library())[0]!.playUntil, licence.playUntil, what)
    }
    await assert.rejects(device.renew({ content: work.contentId, renewal: new Uint8Array([1, 2, 3]) }))

    // the second escrow of the offer vouches: the licence plays for another lifetime
    const r = await renewalRequest()
    const good = await statement(escrows[1]!.peerKey, r)
    const before = Date.now()
    const renewed = await device.renew({ content: work.contentId, renewal: good })
    assert.ok(renewed.renewedAt != null && renewed.renewedAt >= before)
    assert.equal(renewed.playUntil, renewed.renewedAt + TTL_MS)
    assert.equal((await play('renewed.bin')).bytes, 200 * 1024 + 5)
    assert.deepEqual(await readFile(join(dir, 'renewed.bin')), await readFile(work.plaintextFile))
    // a statement renews once: replayed, it answers no request that is out
    await assert.rejects(device.renew({ content: work.contentId, renewal: good }), { code: 'ERR_BAD_RENEWAL' })
    assert.equal(peerIdFromPrivateKey(escrows[1]!.peerKey).toString(), escrows[1]!.peer)
  })

  it('asks for no renewal of a content it holds no licence for', async function () {
    await assert.rejects(device.renewalRequest({ content: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy' }), { code: 'ERR_NO_LICENCE' })
  })
})
