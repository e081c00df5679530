import assert from 'node:assert/strict'
import { createHash, createPublicKey } from 'node:crypto'
import { chmod, cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { utf8 } from '../../device/crypto/bytes.ts'
import { KeyStore } from '../../device/store/keystore.ts'
import {
  MIN_KDF_N, generateStoreKey, openRecord, openWithPassphrase, sealRecord, sealWithPassphrase
} from '../../device/store/seal.ts'

const FAST = { N: MIN_KDF_N, r: 8, p: 1 }
const PASSPHRASE = utf8('a long enough passphrase')
const FIXTURE = new URL('../fixtures/device-keystore-v1/', import.meta.url).pathname

describe('sealing at rest (device/store/seal)', function () {
  this.timeout(120_000)

  it('a passphrase-sealed blob round-trips and stores its KDF parameters', async () => {
    const plain = utf8('store key material, 32 bytes or so')
    const sealed = await sealWithPassphrase(PASSPHRASE, plain, utf8('aad'), FAST)
    assert.deepEqual(sealed.kdf, FAST)
    assert.equal(sealed.salt.length, 16)
    assert.equal(sealed.nonce.length, 12)
    assert.deepEqual(await openWithPassphrase(PASSPHRASE, sealed, utf8('aad')), plain)
    assert.ok(!Buffer.from(sealed.box).includes(Buffer.from(plain)), 'the plaintext shows through')
  })

  it('a wrong passphrase, another AAD or a flipped bit: ERR_WRONG_PASSPHRASE', async () => {
    const sealed = await sealWithPassphrase(PASSPHRASE, utf8('secret'), utf8('store-a'), FAST)
    await assert.rejects(openWithPassphrase(utf8('a wrong passphrase!'), sealed, utf8('store-a')), { code: 'ERR_WRONG_PASSPHRASE' })
    await assert.rejects(openWithPassphrase(PASSPHRASE, sealed, utf8('store-b')), { code: 'ERR_WRONG_PASSPHRASE' })
    const box = sealed.box.slice()
    box[3]! ^= 1
    await assert.rejects(openWithPassphrase(PASSPHRASE, { ...sealed, box }, utf8('store-a')), { code: 'ERR_WRONG_PASSPHRASE' })
    const salt = sealed.salt.slice()
    salt[0]! ^= 1
    await assert.rejects(openWithPassphrase(PASSPHRASE, { ...sealed, salt }, utf8('store-a')), { code: 'ERR_WRONG_PASSPHRASE' })
  })

  it('refuses a short passphrase and a KDF below the minimum cost', async () => {
    await assert.rejects(sealWithPassphrase(utf8('short'), utf8('x'), utf8('a'), FAST), { code: 'ERR_WEAK_PASSPHRASE' })
    await assert.rejects(sealWithPassphrase(PASSPHRASE, utf8('x'), utf8('a'), { N: MIN_KDF_N / 2, r: 8, p: 1 }), { code: 'ERR_STORE_CORRUPT' })
    await assert.rejects(sealWithPassphrase(PASSPHRASE, utf8('x'), utf8('a'), { N: 3 * 2 ** 14, r: 8, p: 1 }), { code: 'ERR_STORE_CORRUPT' })
    // a stored file naming a cheap KDF does not open either: a thief cannot lower the cost
    const sealed = await sealWithPassphrase(PASSPHRASE, utf8('x'), utf8('a'), FAST)
    await assert.rejects(openWithPassphrase(PASSPHRASE, { ...sealed, kdf: { N: 2 ** 10, r: 8, p: 1 } }, utf8('a')), { code: 'ERR_STORE_CORRUPT' })
  })

  it('records round-trip under their purpose and name only (property)', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 2048 }),
      fc.string({ minLength: 1, maxLength: 40 }),
      fc.string({ minLength: 1, maxLength: 40 }),
      fc.nat(),
      (plain, name, other, flip) => {
        const key = generateStoreKey()
        const sealed = sealRecord(key, `purpose:${name}`, utf8(name), plain)
        assert.deepEqual(openRecord(key, `purpose:${name}`, utf8(name), sealed), plain)
        if (other !== name) {
          assert.throws(() => openRecord(key, `purpose:${other}`, utf8(name), sealed), { code: 'ERR_RECORD_UNREADABLE' })
          assert.throws(() => openRecord(key, `purpose:${name}`, utf8(other), sealed), { code: 'ERR_RECORD_UNREADABLE' })
        }
        assert.throws(() => openRecord(generateStoreKey(), `purpose:${name}`, utf8(name), sealed), { code: 'ERR_RECORD_UNREADABLE' })
        const tampered = sealed.slice()
        tampered[flip % tampered.length]! ^= 1 << (flip % 8)
        assert.throws(() => openRecord(key, `purpose:${name}`, utf8(name), tampered), { code: 'ERR_RECORD_UNREADABLE' })
        assert.throws(() => openRecord(key, `purpose:${name}`, utf8(name), sealed.subarray(0, 12)), { code: 'ERR_RECORD_UNREADABLE' })
      }
    ), { numRuns: 200 })
  })

  describe('the device key store file format', () => {
    let dir: string

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'keyfair-seal-'))
    })

    after(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    it('a key store sealed before the sealing was shared still opens, with its records', async () => {
      const copy = join(dir, 'v1')
      await cp(FIXTURE, copy, { recursive: true })
      // git keeps no file modes: the store refuses a key store others may read
      await chmod(join(copy, 'keystore.cbor'), 0o600)
      const store = new KeyStore(copy)
      await assert.rejects(store.open(utf8('not the fixture passphrase')), { code: 'ERR_WRONG_PASSPHRASE' })
      const secrets = await store.open(utf8('fixture passphrase v1'))
      assert.equal(secrets.deviceId, 'a2fa46bc0e84380cd4c71609905a710f')
      const spkiHash = (key: typeof secrets.signingKey): string => createHash('sha256').update(createPublicKey(key).export({ type: 'spki', format: 'der' })).digest('hex')
      assert.equal(spkiHash(secrets.encryptionKey), '7c473e9d5b26acfb9bc5e0104ed77b5406bf3a5e2b7d91a6ff79400b71142fa9')
      assert.deepEqual(await store.getRecord(secrets, 'licence', 'fixture-licence'), { title: 'fixture', n: 42, bytes: new Uint8Array([1, 2, 3]) })
      // and a record the shared code seals now opens with the same store
      await store.putRecord(secrets, 'purchase', 'new-one', { v: 1 })
      assert.deepEqual(await (new KeyStore(copy)).getRecord(await store.open(utf8('fixture passphrase v1')), 'purchase', 'new-one'), { v: 1 })
    })

    it('a new key store opens, and refuses a wrong passphrase', async () => {
      const store = new KeyStore(join(dir, 'new'))
      const created = await store.create(PASSPHRASE, { bits: 2048, kdf: FAST })
      const opened = await store.open(PASSPHRASE)
      assert.equal(opened.deviceId, created.deviceId)
      assert.deepEqual(opened.recordKey, created.recordKey)
      await assert.rejects(store.open(utf8('another passphrase')), { code: 'ERR_WRONG_PASSPHRASE' })
    })
  })
})
