// The crypto a dispute rests on: the part commitments (against python hashlib), the pure
// OAEP decode (against OpenSSL's own OAEP, on valid and tampered encodings), and the
// proof m = w^d of what a device's K_dev wrap decrypts to.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, randomInt } from 'node:crypto'
import {
  checkDeviceWrapOpening, devicePartCommitment, deviceKeyFromOpening, escrowPartCommitment, i2ospMod, isDeviceWrapCiphertext,
  keyCommitment, oaepDecodeSha256, openDeviceWrap, os2ip, rsaPublicParams, verifyDevicePartCommitment,
  verifyEscrowPartCommitment, verifyKeyCommitment, wrapDeviceKey
} from '../../device/crypto/index.ts'
import type { KeyObject } from 'node:crypto'

/** SHA-256(label ‖ value) for each pair, computed by python's hashlib */
function pythonCommitments (pairs: Array<[string, Uint8Array]>): string[] {
  const script = 'import hashlib, json, sys\n' +
    'print(json.dumps([hashlib.sha256(l.encode() + bytes.fromhex(v)).hexdigest() for l, v in json.load(sys.stdin)]))'
  const input = JSON.stringify(pairs.map(([label, value]) => [label, Buffer.from(value).toString('hex')]))
  return JSON.parse(execFileSync('python3', ['-c', script], { input, encoding: 'utf8' }))
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** OpenSSL's OAEP-SHA256 decryption of c, or undefined where it refuses */
function opensslOaep (privateKey: KeyObject, c: Uint8Array): Uint8Array | undefined {
  try {
    return new Uint8Array(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, c))
  } catch {
    return undefined
  }
}

/** Our decode of the raw value em, or undefined where it refuses */
function ourOaep (em: Uint8Array): Uint8Array | undefined {
  try {
    return oaepDecodeSha256(em)
  } catch (err: any) {
    assert.equal(err.code, 'ERR_OAEP_DECODE')
    return undefined
  }
}

const raw = (key: KeyObject, value: Uint8Array): Uint8Array =>
  new Uint8Array(key.type === 'private'
    ? privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, value)
    : publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, value))

describe('dispute crypto', function () {
  this.timeout(120_000)
  const keys = [2048, 3072].map(bits => ({ bits, ...generateKeyPairSync('rsa', { modulusLength: bits }) }))

  it('commits to K, K_esc and K_dev under separate labels, as python hashlib computes them', function () {
    const values = Array.from({ length: 6 }, () => new Uint8Array(randomBytes(32)))
    values.push(new Uint8Array(32), new Uint8Array(32).fill(0xff))
    const expected = pythonCommitments(values.flatMap(v => [['keyfair/v1/kc', v], ['keyfair/v1/kc-esc', v], ['keyfair/v1/kc-dev', v]] as Array<[string, Uint8Array]>))
    values.forEach((v, i) => {
      assert.equal(hex(keyCommitment(v)), expected[3 * i])
      assert.equal(hex(escrowPartCommitment(v)), expected[3 * i + 1])
      assert.equal(hex(devicePartCommitment(v)), expected[3 * i + 2])
      assert.equal(verifyEscrowPartCommitment(v, escrowPartCommitment(v)), true)
      assert.equal(verifyDevicePartCommitment(v, devicePartCommitment(v)), true)
      // a commitment to one part never opens as the other, or as K
      assert.equal(verifyEscrowPartCommitment(v, devicePartCommitment(v)), false)
      assert.equal(verifyDevicePartCommitment(v, escrowPartCommitment(v)), false)
      assert.equal(verifyKeyCommitment(v, escrowPartCommitment(v)), false)
    })
    const v = values[0]!
    const other = new Uint8Array(v)
    other[31]! ^= 1
    assert.equal(verifyEscrowPartCommitment(other, escrowPartCommitment(v)), false)
    assert.equal(verifyDevicePartCommitment(other, devicePartCommitment(v)), false)
    assert.equal(verifyEscrowPartCommitment(v.subarray(1), escrowPartCommitment(v)), false)
    assert.equal(verifyDevicePartCommitment(v, devicePartCommitment(v).subarray(1)), false)
    assert.throws(() => escrowPartCommitment(new Uint8Array(31)), { code: 'ERR_INVALID_ARG' })
    assert.throws(() => devicePartCommitment(new Uint8Array(33)), { code: 'ERR_INVALID_ARG' })
  })

  it('decodes OAEP-SHA256 exactly as OpenSSL decrypts it, for valid and tampered encodings', function () {
    for (const { bits, publicKey, privateKey } of keys) {
      const k = bits / 8
      for (let i = 0; i < 40; i++) {
        const message = new Uint8Array(randomBytes(randomInt(0, k - 2 * 32 - 2 + 1)))
        const c = new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, message))
        const em = raw(privateKey, c)
        assert.equal(em.length, k)
        assert.deepEqual(ourOaep(em), message, `${bits} bits, ${message.length}-byte message`)
      }
    }
    // a valid encoding, tampered ones and random values: we refuse exactly where OpenSSL
    // refuses, and agree where it accepts
    const { publicKey, privateKey } = keys[0]!
    const n = rsaPublicParams(publicKey).n
    const message = new Uint8Array(randomBytes(32))
    const em = raw(privateKey, new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, message)))
    let accepted = 0
    let refused = 0
    const candidates: Uint8Array[] = [em]
    for (let i = 0; i < em.length; i += 7) {
      const tampered = new Uint8Array(em)
      tampered[i]! ^= 1 << randomInt(0, 8)
      candidates.push(tampered)
    }
    for (let i = 0; i < 40; i++) candidates.push(i2ospMod(os2ip(new Uint8Array(randomBytes(256))) % n, n))
    const below = candidates.filter(c => os2ip(c) < n)
    for (const candidate of below) {
      const ours = ourOaep(candidate)
      const theirs = opensslOaep(privateKey, raw(publicKey, candidate))
      assert.deepEqual(ours, theirs)
      if (ours == null) refused++
      else accepted++
    }
    // every change to an encoding spreads through both masks: only the untouched one decodes
    assert.deepEqual([accepted, refused], [1, below.length - 1])
    for (const bad of [new Uint8Array(0), new Uint8Array(65), new Uint8Array(256)]) assert.throws(() => oaepDecodeSha256(bad), { code: 'ERR_OAEP_DECODE' })
  })

  it('proves what a K_dev wrap decrypts to with m = w^d, checkable with the public key alone', function () {
    const { publicKey, privateKey } = keys[0]!
    const other = keys[1]!
    const n = rsaPublicParams(publicKey).n
    const kDev = new Uint8Array(randomBytes(32))
    const w = wrapDeviceKey(kDev, publicKey)
    assert.equal(isDeviceWrapCiphertext(w, publicKey), true)
    const m = openDeviceWrap(w, privateKey)
    assert.equal(m.length, 256)
    assert.equal(checkDeviceWrapOpening(w, m, publicKey), true)
    assert.deepEqual(deviceKeyFromOpening(m), kDev)
    // a changed m, or m under another key, fails m^e = w
    const changed = new Uint8Array(m)
    changed[100]! ^= 1
    assert.equal(checkDeviceWrapOpening(w, changed, publicKey), false)
    assert.equal(checkDeviceWrapOpening(w, m.subarray(1), publicKey), false)
    assert.equal(checkDeviceWrapOpening(w, i2ospMod(n - 1n, n), publicKey), false)
    assert.equal(checkDeviceWrapOpening(w, i2ospMod(os2ip(m) + n, n + n), publicKey), false, 'm ≥ n is refused')
    const wOther = wrapDeviceKey(kDev, other.publicKey)
    assert.equal(checkDeviceWrapOpening(w, openDeviceWrap(wOther, other.privateKey).subarray(0, 256), publicKey), false)
    // a wrap that is no ciphertext for the key: wrong length or ≥ n
    assert.equal(isDeviceWrapCiphertext(w.subarray(1), publicKey), false)
    assert.equal(isDeviceWrapCiphertext(i2ospMod(n, n + 1n).subarray(-256), publicKey), false)
    assert.equal(isDeviceWrapCiphertext(wOther, publicKey), false)
    assert.throws(() => openDeviceWrap(wOther, privateKey), { code: 'ERR_DEVICE_KEY' })
    // what the seller may have wrapped instead: another length, or no OAEP at all
    const short = new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, randomBytes(31)))
    assert.equal(deviceKeyFromOpening(openDeviceWrap(short, privateKey)), undefined)
    const garbage = i2ospMod(os2ip(new Uint8Array(randomBytes(256))) % n, n)
    const opened = openDeviceWrap(garbage, privateKey)
    assert.equal(checkDeviceWrapOpening(garbage, opened, publicKey), true)
    assert.equal(deviceKeyFromOpening(opened), undefined)
    // no secret of the key is in the opening: m is w^d, which anyone holding w and m checks
    assert.deepEqual(raw(publicKey, m), w)
  })
})
