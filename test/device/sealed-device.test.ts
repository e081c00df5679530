import assert from 'node:assert/strict'
import { X509Certificate, createHash, randomBytes } from 'node:crypto'
import { copyFile, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { combineShares, modInverse, os2ip, i2ospMod, unwrapShare, xorBytes, rsaPrivateParams } from '../../device/crypto/index.ts'
import { decodeObject, encodeObject as encodeSigned } from '../../device/objects/codec.ts'
import { parseSignedDispute, parseSignedReceipt } from '../../device/objects/market.ts'
import { signWithPeerKey, signedId, verifyDeviceSigned } from '../../device/objects/signed.ts'
import { KeyStore } from '../../device/store/keystore.ts'
import { DeviceClient, DeviceUnavailableError } from '../../node/device/client.ts'
import { createLicence } from '../../node/seller/offers.ts'
import { answerRequest, createEscrows, encryptWork, offerWork } from '../helpers/market.ts'
import { createTestAgency } from '../helpers/test-agency.ts'
import type { TestEscrow, TestWork } from '../helpers/market.ts'
import type { TestAgency } from '../helpers/test-agency.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'

const PASSPHRASE = 'correct horse battery staple'
const FAST_KDF = { N: 2 ** 14, r: 8, p: 1 }

async function sha256File (file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex')
}

/** SHA-256 of every file under dir, by relative path */
async function snapshot (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    out[path.slice(dir.length)] = await sha256File(path)
  }
  return out
}

/** Every 16-byte window of each encoding of `secret` that could betray it */
function secretWindows (secret: Uint8Array): Set<string> {
  const encodings = [
    Buffer.from(secret),
    Buffer.from(Buffer.from(secret).toString('hex')),
    Buffer.from(Buffer.from(secret).toString('hex').toUpperCase()),
    Buffer.from(Buffer.from(secret).toString('base64')),
    Buffer.from(Buffer.from(secret).toString('base64url'))
  ]
  const windows = new Set<string>()
  for (const e of encodings) {
    for (let i = 0; i + 16 <= e.length; i++) windows.add(e.subarray(i, i + 16).toString('hex'))
  }
  return windows
}

/** Secrets (by name) of which any 16-byte window appears in `haystack` */
function leaks (haystack: Uint8Array, secrets: Record<string, Uint8Array>): string[] {
  const seen = new Set<string>()
  const h = Buffer.from(haystack)
  for (let i = 0; i + 16 <= h.length; i++) seen.add(h.subarray(i, i + 16).toString('hex'))
  return Object.entries(secrets).filter(([, s]) => [...secretWindows(s)].some(w => seen.has(w))).map(([name]) => name)
}

/** The private parts of an RSA key (its PKCS#8 also holds n and e, which are public) */
function rsaSecrets (name: string, key: KeyObject): Record<string, Uint8Array> {
  const { d, p, q, n } = rsaPrivateParams(key)
  const jwk = key.export({ format: 'jwk' })
  return {
    [`${name}.d`]: i2ospMod(d, n),
    [`${name}.p`]: Buffer.from(p.toString(16).padStart(2, '0'), 'hex'),
    [`${name}.q`]: Buffer.from(q.toString(16).padStart(2, '0'), 'hex'),
    [`${name}.dp`]: Buffer.from(jwk.dp!, 'base64url'),
    [`${name}.dq`]: Buffer.from(jwk.dq!, 'base64url'),
    [`${name}.qi`]: Buffer.from(jwk.qi!, 'base64url')
  }
}

describe('sealed device process', function () {
  this.timeout(120_000)
  let dir: string
  let agency: TestAgency
  let escrows: TestEscrow[]
  let sellerKey: PrivateKey
  let work: TestWork
  let boundWork: TestWork
  const devices: DeviceClient[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-device-'))
    agency = createTestAgency()
    escrows = await createEscrows(5)
    sellerKey = await generateKeyPair('Ed25519')
    const plain = join(dir, 'work.bin')
    await writeFile(plain, randomBytes(300 * 1024 + 17))
    work = await encryptWork(dir, 'work', plain)
    const plainBound = join(dir, 'bound.bin')
    await writeFile(plainBound, randomBytes(100 * 1024))
    boundWork = await encryptWork(dir, 'bound', plainBound)
  })

  after(async function () {
    await Promise.all(devices.splice(0).map(async d => d.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  async function startDevice (store: string, tap?: (direction: 'in' | 'out', bytes: Uint8Array) => void): Promise<DeviceClient> {
    const device = new DeviceClient({ store, tap })
    await device.start()
    devices.push(device)
    return device
  }

  async function enrolledDevice (name: string, tap?: (direction: 'in' | 'out', bytes: Uint8Array) => void): Promise<DeviceClient> {
    const device = await startDevice(join(dir, name), tap)
    await device.initialise({ passphrase: PASSPHRASE, bits: 2048, kdf: FAST_KDF })
    await device.installCertificates(agency.issueDevice(await device.certificateRequests()))
    return device
  }

  /** A whole 1-of-1 purchase of `work` through escrow 1 */
  async function buyOneOfOne (device: DeviceClient): Promise<{ purchase: string }> {
    const offer = await offerWork(sellerKey, work, escrows, { t: 1 })
    const p = await device.beginPurchase({ offer: encodeSigned(offer), manifest: work.manifestBytes, buyer: 'b' })
    const { request } = await device.requestShare({ purchase: p.purchase, j: 1 })
    await device.acceptAnswer({ purchase: p.purchase, j: 1, answer: (await answerRequest(escrows[0]!, request, agency.trust())).answer })
    await device.completePurchase({ purchase: p.purchase })
    return p
  }

  it('a call past its limit or abandoned by its caller ends at once; the device answers the next', async function () {
    const device = await startDevice(join(dir, 'limits'))
    const pid = device.pid!
    // a stopped process answers nothing: only the call's own limit can end it
    process.kill(pid, 'SIGSTOP')
    try {
      const started = performance.now()
      await assert.rejects(device.call('status', {}, { timeoutMs: 200 }), (err: Error) => err instanceof DeviceUnavailableError && /did not finish in time/.test(err.message))
      assert.ok(performance.now() - started < 2000, 'the limit ends the call')
      const caller = new AbortController()
      const abandoned = device.call('status', {}, { signal: caller.signal, timeoutMs: 60_000 })
      caller.abort(new Error('the user stopped'))
      await assert.rejects(abandoned, DeviceUnavailableError)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    // the late replies to both are dropped; the next call is answered as usual
    assert.equal(typeof (await device.status()), 'object')
  })

  it('completes 3-of-5 and device-bound purchases, routes around a wrong escrow, and no secret crosses its interface', async function () {
    const recorded: Uint8Array[] = []
    const device = await enrolledDevice('recorded', (_, bytes) => recorded.push(new Uint8Array(bytes)))
    const trust = agency.trust()
    const buyer = 'buyer-peer-id'
    const secrets: Record<string, Uint8Array> = { K: work.secrets.key, 'K.bound': boundWork.secrets.key }
    const publicValues: Uint8Array[] = []

    // the escrow's private op on c gives x (x = c^d_T); r = z·x^-1 — ground truth the device never sends
    function recordShareSecrets (label: string, escrow: TestEscrow, c: Uint8Array, z: Uint8Array, terms: Parameters<typeof escrow.key.unblind>[1], dem: Uint8Array, j: number, contentSalt: Uint8Array, offerSalt: Uint8Array): Uint8Array {
      const x = escrow.key.unblind(c, terms)
      const n = escrow.key.n
      secrets[`${label}.x`] = x
      secrets[`${label}.r`] = i2ospMod((os2ip(z) * modInverse(os2ip(x), n)) % n, n)
      const share = unwrapShare({ x: os2ip(x), n, j, dem, contentSalt, offerSalt })
      secrets[`${label}.share`] = share
      return share
    }

    // --- open offer, 3 of 5; escrow 2 answers under cheaper terms
    const offer = await offerWork(sellerKey, work, escrows, { t: 3, price: 300 })
    const cheap = await offerWork(sellerKey, work, escrows, { t: 3, price: 1 })
    const info = await device.beginPurchase({ offer: encodeSigned(offer), manifest: work.manifestBytes, buyer })
    assert.equal(info.state, 'open')
    assert.equal(info.t, 3)
    const shares: Uint8Array[] = []
    for (const j of [1, 2, 4, 5]) {
      const { request } = await device.requestShare({ purchase: info.purchase, j })
      const escrow = escrows[j - 1]!
      const wrong = j === 2
      const { answer, z, request: parsed } = await answerRequest(escrow, request, trust, wrong ? { terms: cheap.body.terms } : {})
      assert.equal(parsed.body.amount, 300)
      publicValues.push(parsed.body.b)
      const verdict = await device.acceptAnswer({ purchase: info.purchase, j, answer })
      const wrapped = offer.body.shares[j - 1]!
      if (wrong) {
        assert.equal(verdict.accepted, false)
        assert.ok(!verdict.accepted)
        const fraud = parseSignedDispute(decodeObject(verdict.fraud))
        verifyDeviceSigned(fraud, 'dispute', der => trust.verify(der, { purpose: 'device-signing' }))
        assert.equal(fraud.body.reason, 'fraud')
        assert.equal(fraud.body.fraud?.answer.body.j, 2)
        await assert.rejects(device.requestShare({ purchase: info.purchase, j: 2 }), { code: 'ERR_PURCHASE_STATE' })
        recordShareSecrets(`open.${j}`, escrow, wrapped.c, escrow.key.unblind(parsed.body.b, offer.body.terms), offer.body.terms, wrapped.dem, j, work.secrets.salt, offer.body.salt)
      } else {
        assert.deepEqual(verdict, { accepted: true, have: shares.length + 1, need: 3 })
        shares.push(recordShareSecrets(`open.${j}`, escrow, wrapped.c, z, offer.body.terms, wrapped.dem, j, work.secrets.salt, offer.body.salt))
      }
    }
    assert.deepEqual(combineShares(shares, 3), work.secrets.key, 'ground truth rebuilds K')
    const licence = await device.completePurchase({ purchase: info.purchase })
    assert.equal(licence.content, work.contentId)
    const out = join(dir, 'played.bin')
    let progressEvents = 0
    const played = await device.play({ content: work.contentId, manifest: work.manifestBytes, input: work.ciphertextFile, output: out }, () => { progressEvents++ })
    assert.equal(played.bytes, (await stat(work.plaintextFile)).size)
    assert.equal(await sha256File(out), await sha256File(work.plaintextFile))
    assert.equal(progressEvents, work.manifest.chunkCount)
    const { receipt } = await device.receipt({ purchase: info.purchase })
    const parsedReceipt = parseSignedReceipt(decodeObject(receipt))
    verifyDeviceSigned(parsedReceipt, 'receipt', der => trust.verify(der, { purpose: 'device-signing' }))
    assert.equal(parsedReceipt.body.purchase, info.purchase)
    assert.ok(parsedReceipt.body.offer.equals(signedId(offer)))

    // --- device-bound licence, 2 of 5 (no open shares in the offer)
    const boundOffer = await offerWork(sellerKey, boundWork, escrows, { t: 2, open: false })
    const certs = await device.certificates()
    const encryptionCert = new X509Certificate(certs.encryption)
    const lic = await createLicence({
      sellerKey,
      offer: boundOffer,
      key: boundWork.secrets.key,
      contentSalt: boundWork.secrets.salt,
      device: { id: encryptionCert.subject.match(/CN=([0-9a-f]+)/)![1]!, encryptionKey: encryptionCert.publicKey }
    })
    await assert.rejects(device.beginPurchase({ offer: encodeSigned(boundOffer), manifest: boundWork.manifestBytes, buyer }), { code: 'ERR_PURCHASE_STATE' })
    const bound = await device.beginPurchase({ offer: encodeSigned(boundOffer), manifest: boundWork.manifestBytes, licence: encodeSigned(lic), buyer })
    assert.equal(bound.bound, true)
    const boundShares: Uint8Array[] = []
    for (const j of [3, 5]) {
      const { request } = await device.requestShare({ purchase: bound.purchase, j })
      const again = await device.requestShare({ purchase: bound.purchase, j })
      assert.deepEqual(again.request, request, 'asking again returns the same request')
      const { answer, z, request: parsed } = await answerRequest(escrows[j - 1]!, request, trust)
      publicValues.push(parsed.body.b)
      assert.equal((await device.acceptAnswer({ purchase: bound.purchase, j, answer })).accepted, true)
      const wrapped = lic.body.shares[j - 1]!
      boundShares.push(recordShareSecrets(`bound.${j}`, escrows[j - 1]!, wrapped.c, z, boundOffer.body.terms, wrapped.dem, j, boundWork.secrets.salt, lic.body.salt))
    }
    const kEsc = combineShares(boundShares, 2)
    secrets['bound.K_esc'] = kEsc
    secrets['bound.K_dev'] = xorBytes(kEsc, boundWork.secrets.key)
    await device.completePurchase({ purchase: bound.purchase })
    const boundOut = join(dir, 'bound-played.bin')
    await device.play({ content: boundWork.contentId, manifest: boundWork.manifestBytes, input: boundWork.ciphertextFile, output: boundOut })
    assert.equal(await sha256File(boundOut), await sha256File(boundWork.plaintextFile))
    assert.deepEqual((await device.library()).map(l => l.content).sort(), [work.contentId, boundWork.contentId].sort())

    // the device keys, read from the store with its passphrase
    const opened = await new KeyStore(join(dir, 'recorded')).open(Buffer.from(PASSPHRASE))
    Object.assign(secrets, rsaSecrets('d_U', opened.signingKey), rsaSecrets('deviceDecryption', opened.encryptionKey), { recordKey: opened.recordKey })

    const all = Buffer.concat(recorded)
    assert.ok(all.length > 10_000, `recorded ${all.length} bytes`)
    // positive control: the scanner finds what did cross (each b_j)
    assert.deepEqual(leaks(all, Object.fromEntries(publicValues.map((b, i) => [`b${i}`, b]))).length, publicValues.length)
    assert.deepEqual(leaks(all, secrets), [], 'secrets seen on the device interface')
    // nor does the store on disk hold any of them in the clear
    for (const file of Object.keys(await snapshot(join(dir, 'recorded')))) {
      assert.deepEqual(leaks(await readFile(join(dir, 'recorded', file)), secrets), [], `secrets in ${file}`)
    }
  })

  it('a copied key store yields nothing without its passphrase; a wrong one fails clearly and changes nothing', async function () {
    const source = await enrolledDevice('original')
    const p = await buyOneOfOne(source)
    await source.stop()

    const copy = join(dir, 'copied')
    await cp(join(dir, 'original'), copy, { recursive: true })
    const before = await snapshot(copy)
    const thief = await startDevice(copy)
    const deviceId = await new KeyStore(copy).deviceId()
    assert.deepEqual(await thief.status(), { initialised: true, unlocked: false, enrolled: true, deviceId })
    const out = join(dir, 'stolen.bin')
    await assert.rejects(thief.play({ content: work.contentId, manifest: work.manifestBytes, input: work.ciphertextFile, output: out }), { code: 'ERR_DEVICE_LOCKED' })
    await assert.rejects(thief.library(), { code: 'ERR_DEVICE_LOCKED' })
    await assert.rejects(thief.requestShare({ purchase: p.purchase, j: 1 }), { code: 'ERR_DEVICE_LOCKED' })
    await assert.rejects(thief.unlock({ passphrase: 'not the passphrase' }), (err: any) => {
      assert.equal(err.code, 'ERR_WRONG_PASSPHRASE')
      assert.match(err.message, /wrong passphrase/)
      return true
    })
    await assert.rejects(stat(out), { code: 'ENOENT' })
    assert.deepEqual(await snapshot(copy), before, 'store unchanged')
    // the right passphrase still opens it: the failure was the passphrase, not damage
    await thief.unlock({ passphrase: PASSPHRASE })
    await thief.play({ content: work.contentId, manifest: work.manifestBytes, input: work.ciphertextFile, output: out })
    assert.equal(await sha256File(out), await sha256File(work.plaintextFile))
  })

  it('a licence copied to another device does not open there', async function () {
    const owner = await enrolledDevice('owner')
    const other = await enrolledDevice('other')
    await buyOneOfOne(owner)
    await mkdir(join(dir, 'other', 'licence'), { recursive: true })
    await copyFile(join(dir, 'owner', 'licence', work.contentId), join(dir, 'other', 'licence', work.contentId))
    const out = join(dir, 'lent.bin')
    await assert.rejects(other.play({ content: work.contentId, manifest: work.manifestBytes, input: work.ciphertextFile, output: out }), { code: 'ERR_RECORD_UNREADABLE' })
    assert.deepEqual(await other.library(), [])
    await assert.rejects(stat(out), { code: 'ENOENT' })
  })

  it('keeps r across a crash of the device process between request and answer', async function () {
    const store = join(dir, 'crashy')
    const device = await enrolledDevice('crashy')
    const offer = await offerWork(sellerKey, work, escrows, { t: 1 })
    const p = await device.beginPurchase({ offer: encodeSigned(offer), manifest: work.manifestBytes, buyer: 'b' })
    const { request } = await device.requestShare({ purchase: p.purchase, j: 4 })
    process.kill(device.pid!, 'SIGKILL')
    await assert.rejects(device.status(), { code: 'ERR_DEVICE_UNAVAILABLE' })
    const restarted = await startDevice(store)
    await restarted.unlock({ passphrase: PASSPHRASE })
    const { answer } = await answerRequest(escrows[3]!, request, agency.trust())
    assert.equal((await restarted.acceptAnswer({ purchase: p.purchase, j: 4, answer })).accepted, true)
    assert.equal((await restarted.completePurchase({ purchase: p.purchase })).content, work.contentId)
  })

  it('refuses a key that fails the commitment and signs a dispute that opens the shares', async function () {
    const device = await enrolledDevice('disputer')
    const trust = agency.trust()
    // the seller commits to one key and wraps another
    const liar = { ...work, secrets: { ...work.secrets, key: new Uint8Array(randomBytes(32)) } }
    const offer = await offerWork(sellerKey, liar, escrows, { t: 2 })
    offer.body.kc = (await offerWork(sellerKey, work, escrows, { t: 2 })).body.kc
    const resigned = await signWithPeerKey('offer', offer.body, sellerKey)
    const p = await device.beginPurchase({ offer: encodeSigned(resigned), manifest: work.manifestBytes, buyer: 'b' })
    for (const j of [1, 2]) {
      const { request } = await device.requestShare({ purchase: p.purchase, j })
      await device.acceptAnswer({ purchase: p.purchase, j, answer: (await answerRequest(escrows[j - 1]!, request, trust)).answer })
    }
    await assert.rejects(device.completePurchase({ purchase: p.purchase }), { code: 'ERR_KEY_COMMITMENT' })
    await assert.rejects(device.receipt({ purchase: p.purchase }), { code: 'ERR_PURCHASE_STATE' })
    const { dispute } = await device.dispute({ purchase: p.purchase, reason: 'key' })
    const parsed = parseSignedDispute(decodeObject(dispute))
    verifyDeviceSigned(parsed, 'dispute', der => trust.verify(der, { purpose: 'device-signing' }))
    assert.deepEqual(parsed.body.openings.map(o => o.j), [1, 2])
    assert.equal((await device.purchases()).find(x => x.purchase === p.purchase)?.state, 'disputed')
  })

  it('refuses answers not signed by the escrow of that share, and bad requests, with clear codes', async function () {
    const device = await enrolledDevice('strict')
    const trust = agency.trust()
    const offer = await offerWork(sellerKey, work, escrows, { t: 1 })
    const p = await device.beginPurchase({ offer: encodeSigned(offer), manifest: work.manifestBytes, buyer: 'b' })
    const { request } = await device.requestShare({ purchase: p.purchase, j: 1 })
    const impostor = { ...escrows[0]!, peerKey: escrows[1]!.peerKey }
    const { answer } = await answerRequest(impostor, request, trust)
    await assert.rejects(device.acceptAnswer({ purchase: p.purchase, j: 1, answer }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    await assert.rejects(device.requestShare({ purchase: p.purchase, j: 9 }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    await assert.rejects(device.requestShare({ purchase: 'f'.repeat(32), j: 1 }), { code: 'ERR_UNKNOWN_PURCHASE' })
    await assert.rejects(device.beginPurchase({ offer: new Uint8Array([1, 2, 3]), manifest: work.manifestBytes, buyer: 'b' }), { code: 'ERR_BAD_OBJECT' })
    await assert.rejects(device.beginPurchase({ offer: encodeSigned(offer), manifest: boundWork.manifestBytes, buyer: 'b' }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    await assert.rejects(device.call('play', { content: 1 }), { code: 'ERR_BAD_DEVICE_REQUEST' })
    await assert.rejects(device.call('format' as any), { code: 'ERR_BAD_DEVICE_REQUEST' })
    const expired = await offerWork(sellerKey, work, escrows, { t: 1, expiry: Date.now() - 1 })
    await assert.rejects(device.beginPurchase({ offer: encodeSigned(expired), manifest: work.manifestBytes, buyer: 'b' }), { code: 'ERR_PURCHASE_STATE' })
    await assert.rejects(device.initialise({ passphrase: PASSPHRASE, bits: 2048, kdf: FAST_KDF }), { code: 'ERR_DEVICE_EXISTS' })
    const fresh = await startDevice(join(dir, 'fresh'))
    await assert.rejects(fresh.initialise({ passphrase: 'short', kdf: FAST_KDF }), { code: 'ERR_WEAK_PASSPHRASE' })
    await assert.rejects(fresh.unlock({ passphrase: PASSPHRASE }), { code: 'ERR_DEVICE_NOT_INITIALISED' })
  })
})
