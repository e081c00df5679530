// Signed objects: deterministic encoding named by CID, peer-key and device-key (PSS)
// signatures, with the PSS signature cross-checked against the openssl CLI.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { decodeObject, encodeObject, encodeWithEncoded, objectCid } from '../../device/objects/codec.ts'
import { parseSignedReceipt } from '../../device/objects/market.ts'
import {
  PSS_SALT_LENGTH, parseSigned, signWithDeviceKey, signWithDeviceKeyInPool, signWithPeerKey, signedId, signingInput, verifyDeviceSigned, verifyPeerSigned
} from '../../device/objects/signed.ts'
import { CID } from 'multiformats/cid'
import type { KeyObject } from 'node:crypto'

const OFFER_CID = CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

describe('signed objects', function () {
  this.timeout(60_000)
  let dir = ''
  let deviceKey: KeyObject
  const certificate = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])
  const certified = (key: KeyObject) => (der: Uint8Array) => {
    assert.deepEqual(der, certificate)
    return { publicKey: key }
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyfair-signed-'))
    deviceKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  })

  after(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('encodes deterministically: key order does not change bytes or CID', function () {
    fc.assert(fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.integer(), fc.string(), fc.uint8Array({ maxLength: 8 })), { noNullPrototype: true }), record => {
      const reversed = Object.fromEntries(Object.entries(record).reverse())
      assert.deepEqual(encodeObject(reversed), encodeObject(record))
      assert.ok(objectCid(reversed).equals(objectCid(record)))
      assert.deepEqual(decodeObject(encodeObject(record)), record)
    }), { numRuns: 200 })
  })

  it('a map spliced from already-encoded values has exactly the bytes of encoding it whole', function () {
    const value = fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.uint8Array({ maxLength: 8 }), fc.constant(OFFER_CID),
      fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { noNullPrototype: true, maxKeys: 5 }))
    // keys of every UTF-8 length, so the length-then-bytes order of dag-cbor is exercised
    const key = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 6 }))
    fc.assert(fc.property(fc.dictionary(key, value, { noNullPrototype: true, maxKeys: 30 }), fc.nat(), (map, pick) => {
      const keys = Object.keys(map)
      const encoded: Record<string, Uint8Array> = {}
      for (const [i, k] of keys.entries()) if (((pick >> (i % 30)) & 1) === 1) encoded[k] = encodeObject(map[k])
      assert.deepEqual(Buffer.from(encodeWithEncoded(map, encoded)), Buffer.from(encodeObject(map)))
    }), { numRuns: 300 })
    // a signed object whose body is spliced in, as the escrow names a request
    const signed = signWithDeviceKey('receipt', { v: 1, purchase: 'p', offer: OFFER_CID, at: 7 }, deviceKey, certificate)
    const spliced = encodeWithEncoded(signed as unknown as Record<string, unknown>, { body: encodeObject(signed.body) })
    assert.deepEqual(Buffer.from(spliced), Buffer.from(encodeObject(signed)))
    assert.throws(() => encodeWithEncoded({ a: undefined }, {}), { code: 'ERR_BAD_OBJECT' })
  })

  it('refuses non-canonical encodings and values that have none', function () {
    // a map with keys out of order is not strict dag-cbor: it would have another CID
    const unsorted = new Uint8Array([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02])
    assert.throws(() => decodeObject(unsorted), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => encodeObject({ a: undefined }), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => encodeObject({ a: Symbol('s') }), { code: 'ERR_BAD_OBJECT' })
  })

  it('peer-signed objects verify, name their signer, and fail on any change', async function () {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const body = { v: 1, title: 'x', price: 5 }
    const signed = await signWithPeerKey('offer', body, key)
    assert.equal(await verifyPeerSigned(signed, 'offer'), peerIdFromPrivateKey(key).toString())
    const roundTrip = parseSigned(decodeObject(encodeObject(signed)), 'offer')
    assert.equal(await verifyPeerSigned(roundTrip, 'offer'), peerIdFromPrivateKey(key).toString())
    assert.ok(signedId(roundTrip).equals(signedId(signed)))
    await assert.rejects(verifyPeerSigned({ ...signed, body: { ...body, price: 4 } }, 'offer'), { code: 'ERR_BAD_SIGNATURE' })
    await assert.rejects(verifyPeerSigned({ ...signed, kind: 'licence' }, 'licence'), { code: 'ERR_BAD_SIGNATURE' })
    await assert.rejects(verifyPeerSigned(signed, 'licence'), { code: 'ERR_BAD_SIGNATURE' })
    const swapped = { ...signed, signer: (await signWithPeerKey('offer', body, other)).signer }
    await assert.rejects(verifyPeerSigned(swapped, 'offer'), { code: 'ERR_BAD_SIGNATURE' })
    await assert.rejects(verifyPeerSigned({ ...signed, signer: { device: certificate } }, 'offer'), { code: 'ERR_BAD_SIGNATURE' })
  })

  it('device signatures are RSASSA-PSS-SHA256 that openssl verifies, and openssl PSS signatures verify here', function () {
    const body = { v: 1, purchase: 'ab'.repeat(16), offer: OFFER_CID, at: 1 }
    const signed = signWithDeviceKey('receipt', body, deviceKey, certificate)
    const keyFile = join(dir, 'device.pem')
    const pubFile = join(dir, 'device.pub.pem')
    writeFileSync(keyFile, deviceKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    writeFileSync(pubFile, createPublicKey(deviceKey).export({ type: 'spki', format: 'pem' }))
    const input = signingInput('receipt', body)
    const digestFile = join(dir, 'digest.bin')
    writeFileSync(digestFile, createHash('sha256').update(input).digest())
    const sigFile = join(dir, 'sig.bin')
    writeFileSync(sigFile, signed.sig)
    const pss = ['-pkeyopt', 'digest:sha256', '-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', `rsa_pss_saltlen:${PSS_SALT_LENGTH}`]
    const out = execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pubFile, '-in', digestFile, '-sigfile', sigFile, ...pss], { encoding: 'utf8' })
    assert.match(out, /Signature Verified Successfully/)
    // a tampered body's digest fails in openssl too
    writeFileSync(digestFile, createHash('sha256').update(signingInput('receipt', { ...body, at: 2 })).digest())
    assert.throws(() => execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pubFile, '-in', digestFile, '-sigfile', sigFile, ...pss], { stdio: 'pipe' }))

    // and the other way: openssl signs, verifyDeviceSigned accepts
    writeFileSync(digestFile, createHash('sha256').update(input).digest())
    const opensslSig = execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', keyFile, '-in', digestFile, ...pss])
    const fromOpenssl = { ...signed, sig: new Uint8Array(opensslSig) }
    assert.notDeepEqual(fromOpenssl.sig, signed.sig, 'PSS is randomised')
    verifyDeviceSigned(fromOpenssl, 'receipt', certified(deviceKey))
  })

  it('device-signed objects fail on a changed body, another key, another kind or a peer signer', function () {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 2 ** 40 }), (at, changed) => {
      fc.pre(at !== changed)
      const signed = signWithDeviceKey('receipt', { v: 1, purchase: 'p', offer: OFFER_CID, at }, deviceKey, certificate)
      verifyDeviceSigned(signed, 'receipt', certified(deviceKey))
      assert.throws(() => verifyDeviceSigned({ ...signed, body: { v: 1, purchase: 'p', offer: OFFER_CID, at: changed } }, 'receipt', certified(deviceKey)), { code: 'ERR_BAD_SIGNATURE' })
      assert.throws(() => verifyDeviceSigned(signed, 'receipt', certified(other)), { code: 'ERR_BAD_SIGNATURE' })
      assert.throws(() => verifyDeviceSigned({ ...signed, kind: 'dispute' }, 'dispute', certified(deviceKey)), { code: 'ERR_BAD_SIGNATURE' })
      assert.throws(() => verifyDeviceSigned({ ...signed, signer: { peer: certificate } }, 'receipt', certified(deviceKey)), { code: 'ERR_BAD_SIGNATURE' })
    }), { numRuns: 20 })
  })

  it('signatures made on the thread pool, several at once, are the same PSS signatures and fail the same way', async function () {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    const bodies = Array.from({ length: 4 }, (_, at) => ({ v: 1, purchase: 'p', offer: OFFER_CID, at }))
    const signed = await Promise.all(bodies.map(async body => signWithDeviceKeyInPool('unblind-request', body, deviceKey, certificate)))
    for (const [i, s] of signed.entries()) {
      assert.deepEqual(s.body, bodies[i])
      verifyDeviceSigned(s, 'unblind-request', certified(deviceKey))
      assert.throws(() => verifyDeviceSigned(s, 'unblind-request', certified(other)), { code: 'ERR_BAD_SIGNATURE' })
      assert.throws(() => verifyDeviceSigned({ ...s, body: bodies[(i + 1) % bodies.length] }, 'unblind-request', certified(deviceKey)), { code: 'ERR_BAD_SIGNATURE' })
    }
    // the encoded object is that of the synchronous signer, signature aside (PSS is randomised)
    const sync = signWithDeviceKey('unblind-request', bodies[0], deviceKey, certificate)
    assert.deepEqual(decodeObject(encodeObject({ ...signed[0]!, sig: sync.sig })), decodeObject(encodeObject(sync)))
    await assert.rejects(signWithDeviceKeyInPool('receipt', bodies[0], createPublicKey(deviceKey), certificate))
  })

  it('parsers refuse unknown fields, wrong kinds and wrong shapes', function () {
    const signed = signWithDeviceKey('receipt', { v: 1, purchase: 'p', offer: OFFER_CID, at: 3 }, deviceKey, certificate)
    const wire = decodeObject(encodeObject(signed)) as Record<string, unknown>
    assert.equal(parseSignedReceipt(wire).body.at, 3)
    assert.throws(() => parseSignedReceipt({ ...wire, extra: 1 }), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => parseSignedReceipt({ ...wire, kind: 'dispute' }), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => parseSignedReceipt({ ...wire, body: { ...(wire.body as object), at: -1 } }), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => parseSignedReceipt({ ...wire, body: { ...(wire.body as object), offer: 'not a cid' } }), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => parseSignedReceipt({ ...wire, signer: { peer: new Uint8Array(1), device: new Uint8Array(1) } }), { code: 'ERR_BAD_OBJECT' })
    assert.throws(() => parseSignedReceipt([]), { code: 'ERR_BAD_OBJECT' })
  })
})
