// The escrow's judgement of key and chunk disputes, one case at a time: each part of a
// device-bound licence refunded when the seller's part is wrong and refused when it is
// right, and every malformed combination refused with ERR_BAD_DISPUTE. Real RSA keys,
// real agency certificates, real seller signatures; the escrow's own node is in
// escrow.test.ts and disputes.test.ts.
import assert from 'node:assert/strict'
import { constants, publicEncrypt, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import {
  devicePartCommitment, escrowPartCommitment, i2ospMod, keyCommitment, openDeviceWrap, os2ip, rsaPublicParams, wrapDeviceKey, xorBytes
} from '../../device/crypto/index.ts'
import { signWithPeerKey, signedId } from '../../device/objects/signed.ts'
import { judgeOpenedDispute } from '../../node/escrow/judge.ts'
import { wrapShares } from '../../node/seller/offers.ts'
import { createEscrows, encryptWork, offerWork } from '../helpers/market.ts'
import { deviceCsrs, deviceKeys } from '../helpers/pki.ts'
import { createTestAgency } from '../helpers/test-agency.ts'
import type { Dispute, Licence, Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { JudgeContext, Verdict } from '../../node/escrow/judge.ts'
import type { DeviceKeys } from '../helpers/pki.ts'
import type { TestEscrow, TestWork } from '../helpers/market.ts'
import type { TestAgency } from '../helpers/test-agency.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'

describe('judging key disputes part by part', function () {
  this.timeout(120_000)
  let dir: string
  let agency: TestAgency
  let escrows: TestEscrow[]
  let sellerKey: PrivateKey
  let work: TestWork
  let offer: Signed<Offer>
  let open: Signed<Offer>
  let device: DeviceKeys & { certificates: { signing: string, encryption: string } }
  let stranger: DeviceKeys & { certificates: { signing: string, encryption: string } }

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-judge-'))
    agency = createTestAgency()
    escrows = await createEscrows(3)
    sellerKey = await generateKeyPair('Ed25519')
    await writeFile(join(dir, 'work.bin'), randomBytes(50_000))
    work = await encryptWork(dir, 'work', join(dir, 'work.bin'), 16 * 1024)
    offer = await offerWork(sellerKey, work, escrows, { t: 2, open: false })
    open = await offerWork(sellerKey, work, escrows, { t: 2, open: true })
    const enrol = (keys: DeviceKeys): DeviceKeys & { certificates: { signing: string, encryption: string } } => ({ ...keys, certificates: agency.issueDevice(deviceCsrs(keys)) })
    device = enrol(deviceKeys())
    stranger = enrol(deviceKeys())
  })

  after(async function () {
    await rm(dir, { recursive: true, force: true })
  })

  interface LicenceParts {
    /** what the shares carry (default K_esc = K ⊕ K_dev) */
    shared?: Uint8Array
    /** the bytes wrapped to the device (default K_dev), or the wrap itself */
    wrapped?: Uint8Array
    wrap?: Uint8Array
    kcEsc?: Uint8Array
    kcDev?: Uint8Array
    /** the offer's K the parts should make (default the work's K) */
    key?: Uint8Array
    device?: string
  }

  /** A seller-signed licence with each of its parts chosen, and the true K_dev, K_esc */
  async function licence (parts: LicenceParts = {}): Promise<{ licence: Signed<Licence>, kDev: Uint8Array, kEsc: Uint8Array }> {
    const kDev = new Uint8Array(randomBytes(32))
    const kEsc = xorBytes(parts.key ?? work.secrets.key, kDev)
    const salt = new Uint8Array(randomBytes(16))
    const body: Licence = {
      v: 1,
      offer: signedId(offer),
      device: parts.device ?? device.deviceId,
      salt,
      shares: wrapShares(parts.shared ?? kEsc, offer.body.terms, work.secrets.salt, salt),
      kDev: parts.wrap ?? rawOaep(parts.wrapped ?? kDev, device.encryption.publicKey),
      kcEsc: parts.kcEsc ?? escrowPartCommitment(kEsc),
      kcDev: parts.kcDev ?? devicePartCommitment(kDev)
    }
    return { licence: await signWithPeerKey('licence', body, sellerKey) as Signed<Licence>, kDev, kEsc }
  }

  function rawOaep (value: Uint8Array, key: KeyObject): Uint8Array {
    return value.length === 32 ? wrapDeviceKey(value, key) : new Uint8Array(publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, value))
  }

  /** x_j = c_j^d_T: what the device unblinds, computed here with the escrows' keys */
  function openings (shares: Licence['shares'], js = [1, 2]): Dispute['openings'] {
    return js.map(j => ({ j, x: escrows[j - 1]!.key.unblind(shares[j - 1]!.c, offer.body.terms) }))
  }

  function dispute (fields: Partial<Dispute>): Dispute {
    return { v: 1, purchase: 'ab'.repeat(16), offer: signedId(offer), reason: 'key', openings: [], manifest: work.manifest, at: Date.now(), ...fields }
  }

  const trust = (): ReturnType<TestAgency['trust']> => agency.trust()
  function context (over: Signed<Offer> = offer, who = device.deviceId): JudgeContext {
    const store = trust()
    return { offer: over, device: who, verifyEncryptionCertificate: async pem => store.verify(pem, { purpose: 'device-encryption' }) }
  }

  const refunded = (v: Verdict): void => { assert.equal(v.sellerAtFault, true, v.reason); assert.match(v.reason, /refunded/) }
  const refused = (v: Verdict): void => { assert.equal(v.sellerAtFault, false, v.reason) }

  it('part escrow: refunds shares that miss kcEsc, refuses good ones, and never needs K_dev', async function () {
    const good = await licence()
    refused(await judgeOpenedDispute(dispute({ part: 'escrow', licence: good.licence, openings: openings(good.licence.body.shares) }), context()))
    // the seller wraps shares of another K_esc than it commits to
    const bad = await licence({ shared: new Uint8Array(randomBytes(32)) })
    refunded(await judgeOpenedDispute(dispute({ part: 'escrow', licence: bad.licence, openings: openings(bad.licence.body.shares) }), context()))
    // an opening that is not the share's secret is the device's fault
    const wrongX = openings(good.licence.body.shares)
    wrongX[0] = { j: 1, x: i2ospMod(os2ip(wrongX[0]!.x) + 1n, os2ip(escrows[0]!.key.modulus)) }
    refused(await judgeOpenedDispute(dispute({ part: 'escrow', licence: good.licence, openings: wrongX }), context()))
  })

  it('part device: refunds a wrap of another K_dev, of no key at all, or of no ciphertext; refuses the committed one and a false m', async function () {
    const proof = (l: Signed<Licence>, m?: Uint8Array): Dispute['kDevWrap'] => {
      const opening: NonNullable<Dispute['kDevWrap']> = { certificate: device.certificates.encryption }
      const value = m ?? tryOpen(l.body.kDev)
      if (value != null) opening.m = value
      return opening
    }
    const tryOpen = (w: Uint8Array): Uint8Array | undefined => {
      try {
        return openDeviceWrap(w, device.encryption.privateKey)
      } catch {
        return undefined
      }
    }
    const good = await licence()
    refused(await judgeOpenedDispute(dispute({ part: 'device', licence: good.licence, kDevWrap: proof(good.licence) }), context()))
    const other = await licence({ wrapped: new Uint8Array(randomBytes(32)) })
    refunded(await judgeOpenedDispute(dispute({ part: 'device', licence: other.licence, kDevWrap: proof(other.licence) }), context()))
    const short = await licence({ wrapped: new Uint8Array(randomBytes(31)) })
    refunded(await judgeOpenedDispute(dispute({ part: 'device', licence: short.licence, kDevWrap: proof(short.licence) }), context()))
    const n = rsaPublicParams(device.encryption.publicKey).n
    const noise = await licence({ wrap: i2ospMod(os2ip(new Uint8Array(randomBytes(256))) % n, n) })
    refunded(await judgeOpenedDispute(dispute({ part: 'device', licence: noise.licence, kDevWrap: proof(noise.licence) }), context()))
    const notCiphertext = await licence({ wrap: new Uint8Array(randomBytes(100)) })
    refunded(await judgeOpenedDispute(dispute({ part: 'device', licence: notCiphertext.licence, kDevWrap: proof(notCiphertext.licence) }), context()))
    // a device claiming its wrap decrypts to something else: m^e ≠ w
    const lie = openDeviceWrap(wrapDeviceKey(new Uint8Array(randomBytes(32)), device.encryption.publicKey), device.encryption.privateKey)
    refused(await judgeOpenedDispute(dispute({ part: 'device', licence: good.licence, kDevWrap: proof(good.licence, lie) }), context()))
  })

  it('part both: refunds parts that each match but do not make K, refuses consistent ones', async function () {
    const good = await licence()
    refused(await judgeOpenedDispute(dispute({ part: 'both', licence: good.licence, openings: openings(good.licence.body.shares), kDev: good.kDev }), context()))
    // the seller commits to parts of another key than the offer's
    const inconsistent = await licence({ key: new Uint8Array(randomBytes(32)) })
    refunded(await judgeOpenedDispute(dispute({ part: 'both', licence: inconsistent.licence, openings: openings(inconsistent.licence.body.shares), kDev: inconsistent.kDev }), context()))
    // a K_dev that is not the committed one proves nothing against the seller
    refused(await judgeOpenedDispute(dispute({ part: 'both', licence: inconsistent.licence, openings: openings(inconsistent.licence.body.shares), kDev: new Uint8Array(randomBytes(32)) }), context()))
  })

  it('an open offer: the openings rebuild K itself', async function () {
    const xs = [1, 2].map(j => ({ j, x: escrows[j - 1]!.key.unblind(open.body.shares[j - 1]!.c, open.body.terms) }))
    refused(await judgeOpenedDispute(dispute({ offer: signedId(open), openings: xs }), context(open)))
    assert.deepEqual(keyCommitment(work.secrets.key), open.body.kc)
  })

  it('refuses every malformed combination with ERR_BAD_DISPUTE', async function () {
    const good = await licence()
    const xs = openings(good.licence.body.shares)
    const wrapProof = { certificate: device.certificates.encryption, m: openDeviceWrap(good.licence.body.kDev, device.encryption.privateKey) }
    const openXs = [1, 2].map(j => ({ j, x: escrows[j - 1]!.key.unblind(open.body.shares[j - 1]!.c, open.body.terms) }))
    const chunk = { index: 0, data: new Uint8Array(16) }
    const forStranger = await licence({ device: stranger.deviceId })
    const cases: Array<[string, Dispute, JudgeContext?]> = [
      ['a key dispute over a licence without a part', dispute({ licence: good.licence, openings: xs })],
      ['part device with openings', dispute({ part: 'device', licence: good.licence, openings: xs, kDevWrap: wrapProof })],
      ['part device without the wrap opening', dispute({ part: 'device', licence: good.licence })],
      ['part device with K_dev in the clear', dispute({ part: 'device', licence: good.licence, kDevWrap: wrapProof, kDev: good.kDev })],
      ['part escrow with K_dev', dispute({ part: 'escrow', licence: good.licence, openings: xs, kDev: good.kDev })],
      ['part escrow with the wrap opening', dispute({ part: 'escrow', licence: good.licence, openings: xs, kDevWrap: wrapProof })],
      ['part escrow opening too few shares', dispute({ part: 'escrow', licence: good.licence, openings: xs.slice(0, 1) })],
      ['part escrow opening a share twice', dispute({ part: 'escrow', licence: good.licence, openings: [xs[0]!, xs[0]!] })],
      ['part both without K_dev', dispute({ part: 'both', licence: good.licence, openings: xs })],
      ['part both without openings', dispute({ part: 'both', licence: good.licence, kDev: good.kDev })],
      ['a key dispute carrying a chunk', dispute({ part: 'escrow', licence: good.licence, openings: xs, chunk })],
      ['a device-bound offer disputed without its licence', dispute({ part: 'escrow', openings: xs })],
      ['a part over an open offer', dispute({ offer: signedId(open), part: 'escrow', openings: openXs }), context(open)],
      ['K_dev over an open offer', dispute({ offer: signedId(open), openings: openXs, kDev: good.kDev }), context(open)],
      ['a chunk dispute naming a part', dispute({ reason: 'chunk', part: 'both', licence: good.licence, openings: xs, kDev: good.kDev, chunk })],
      ['a chunk dispute over a licence without K_dev', dispute({ reason: 'chunk', licence: good.licence, openings: xs, chunk })],
      ['a licence of another device', dispute({ part: 'escrow', licence: forStranger.licence, openings: openings(forStranger.licence.body.shares) })],
      ['the encryption certificate of another device', dispute({ part: 'device', licence: good.licence, kDevWrap: { ...wrapProof, certificate: stranger.certificates.encryption } })],
      ['a licence of another offer', dispute({ part: 'escrow', licence: good.licence, openings: xs, offer: signedId(open) }), context(open)]
    ]
    for (const [what, d, ctx] of cases) {
      await assert.rejects(judgeOpenedDispute(d, ctx ?? context()), (err: any) => {
        assert.equal(err.code, 'ERR_BAD_DISPUTE', `${what}: ${String(err.code)} ${String(err.message)}`)
        return true
      }, what)
    }
    // a certificate the agency did not issue, or for signing: the chain check refuses it
    await assert.rejects(judgeOpenedDispute(dispute({ part: 'device', licence: good.licence, kDevWrap: { ...wrapProof, certificate: device.certificates.signing } }), context()), { code: 'ERR_CERT_PURPOSE' })
  })
})
