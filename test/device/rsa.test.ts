// Price exponent, share wrap, blinding, device-bound split: properties on generated keys
import assert from 'node:assert/strict'
import { checkPrimeSync, createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import {
  base64urlToBigint, bigintToBase64url, bitLength, blind, blindWith, blindingFactor, blindingInverse, carmichael, checkUnblinded, combineDeviceBound,
  combineShares, decryptContent, encryptContent, escrowKeyForTerms, generateContentSecrets,
  i2osp, i2ospMod, importRsaPrivateKey, importRsaPublicKey, keyCommitment, modInverse, modPow,
  openOfferDeviceKey, os2ip, priceExponent, privateExponent, rawPrivate, rawPublic, rawPublicBigInt, rawPublicKey, rsaPrivateParams,
  rsaPublicParams, shareKek, splitDeviceBound, splitSecret, unblind, unwrapDeviceKey, unwrapShare,
  verifyKeyCommitment, wrapDeviceKey, wrapShare
} from '../../device/crypto/index.ts'
import type { KeyObject } from 'node:crypto'
import { collect, generateRsa } from './fixtures.ts'
import type { TestKey } from './fixtures.ts'

const cidArb = fc.uint8Array({ minLength: 1, maxLength: 40 })
const saltArb = fc.uint8Array({ minLength: 16, maxLength: 16 })

describe('RSA: price exponent, share wrap, blinding, device-bound', function () {
  this.timeout(60_000)
  let escrows: TestKey[] = []
  let device: TestKey
  let smallDevice: TestKey

  before(() => {
    escrows = [generateRsa(1024), generateRsa(1024), generateRsa(1024)]
    device = generateRsa(2048)
    smallDevice = escrows[0] as TestKey
  })

  const escrowArb = (): fc.Arbitrary<TestKey> => fc.integer({ min: 0, max: 2 }).map((i) => escrows[i] as TestKey)

  /** the escrow's key for e_T, built as an escrow would (once per terms) */
  function termsKey (k: TestKey, eT: bigint): KeyObject {
    return escrowKeyForTerms(k.params, eT)
  }

  describe('integers and keys', () => {
    it('I2OSP/OS2IP round-trip and reject overflow', () => {
      fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 300n) - 1n }), fc.integer({ min: 38, max: 60 }), (x, len) => {
        const b = i2osp(x, len)
        assert.equal(b.length, len)
        assert.equal(os2ip(b), x)
      }))
      assert.throws(() => i2osp(256n, 1), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => i2osp(-1n, 4), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => i2ospMod(7n, 7n), { code: 'ERR_OUT_OF_RANGE' })
      assert.deepEqual(i2ospMod(1n, 0x10001n), Uint8Array.of(0, 0, 1))
    })

    it('JWK integers are base64url without leading zeros', () => {
      assert.equal(bigintToBase64url(65537n), 'AQAB')
      assert.equal(bigintToBase64url(0xffn), '_w')
      assert.equal(bigintToBase64url(0x100n), 'AQA')
      fc.assert(fc.property(fc.bigInt({ min: 1n, max: (1n << 2100n) }), (x) => {
        const s = bigintToBase64url(x)
        assert.notEqual(Buffer.from(s, 'base64url')[0], 0)
        assert.equal(base64urlToBigint(s), x)
      }))
    })

    it('KeyObject <-> integer parameters round-trip; inconsistent parameters are refused', () => {
      const k = escrows[0] as TestKey
      const again = importRsaPrivateKey(k.params)
      assert.deepEqual(rsaPrivateParams(again), k.params)
      assert.deepEqual(rsaPublicParams(k.publicKey), { n: k.params.n, e: k.params.e })
      assert.equal(rsaPublicParams(importRsaPublicKey({ n: k.params.n, e: 3n })).e, 3n)
      assert.throws(() => importRsaPrivateKey({ ...k.params, d: k.params.d + 2n }), { name: 'RsaKeyError', code: 'ERR_RSA_KEY' })
      assert.throws(() => importRsaPrivateKey({ ...k.params, q: k.params.q + 2n }), { code: 'ERR_RSA_KEY' })
    })

    it('rawPrivate is the inverse of rawPublic and rejects b outside [1, n − 1]', () => {
      const k = escrows[1] as TestKey
      const { n, e } = k.params
      fc.assert(fc.property(fc.bigInt({ min: 1n, max: n - 1n }), (x) => {
        assert.equal(rawPrivate(k.privateKey, rawPublic(x, e, n), n), x)
      }), { numRuns: 30 })
      for (const b of [0n, n, n + 1n, -1n]) {
        assert.throws(() => rawPrivate(k.privateKey, b, n), { name: 'OutOfRangeError', code: 'ERR_OUT_OF_RANGE' })
      }
      // a key for another modulus, or a public key, is refused
      assert.throws(() => rawPrivate(k.privateKey, 5n, device.params.n), { code: 'ERR_RSA_KEY' })
      assert.throws(() => rawPrivate(k.publicKey, 5n, n), { code: 'ERR_RSA_KEY' })
    })

    it('rawPublic through OpenSSL (≤ 3072 bits, 128-bit e_T) equals BigInt, and falls back above', () => {
      const big = generateRsa(4096)
      for (const k of [escrows[0] as TestKey, device, big]) {
        const { n } = k.params
        fc.assert(fc.property(fc.bigInt({ min: 0n, max: n - 1n }), cidArb, (x, cid) => {
          const eT = priceExponent(cid)
          assert.equal(rawPublic(x, eT, n), rawPublicBigInt(x, eT, n))
        }), { numRuns: 10 })
      }
      assert.throws(() => rawPublic(device.params.n, 65537n, device.params.n), { code: 'ERR_OUT_OF_RANGE' })
    })
  })

  describe('price exponent', () => {
    it('is the first prime >= (h[0..16] | 2^127 | 1), deterministic', () => {
      fc.assert(fc.property(cidArb, (cid) => {
        const eT = priceExponent(cid)
        const h = createHash('sha256').update('keyfair/v1/e').update(cid).digest()
        const seed = BigInt('0x' + h.subarray(0, 16).toString('hex')) | (1n << 127n) | 1n
        assert.ok(eT >= seed && eT >= (1n << 127n))
        assert.equal(eT & 1n, 1n)
        assert.ok(checkPrimeSync(eT, { checks: 40 }))
        for (let v = seed; v < eT; v += 2n) assert.ok(!checkPrimeSync(v), 'a smaller prime was skipped')
        assert.equal(priceExponent(cid), eT)
      }), { numRuns: 40 })
    })

    it('d_T = e_T^-1 mod λ(n), refused when gcd(e_T, λ) ≠ 1', () => {
      fc.assert(fc.property(escrowArb(), cidArb, (k, cid) => {
        const eT = priceExponent(cid)
        const dT = privateExponent(eT, k.params.p, k.params.q)
        const lambda = carmichael(k.params.p, k.params.q)
        assert.equal((eT * dT) % lambda, 1n)
        assert.ok(dT < lambda)
      }), { numRuns: 20 })
      const { p, q } = (escrows[0] as TestKey).params
      const lambda = carmichael(p, q)
      let f = 3n
      while (lambda % f !== 0n) f += 2n
      assert.throws(() => privateExponent(f, p, q), { name: 'ExponentError', code: 'ERR_EXPONENT' })
      assert.throws(() => escrowKeyForTerms((escrows[0] as TestKey).params, f), { code: 'ERR_EXPONENT' })
      assert.throws(() => privateExponent(4n, p, q), { code: 'ERR_EXPONENT' })
      assert.throws(() => privateExponent(1n, p, q), { code: 'ERR_EXPONENT' })
    })
  })

  describe('blinding', () => {
    it('blind → private op → unblind equals the plain raw RSA result, and passes the check', () => {
      fc.assert(fc.property(escrowArb(), cidArb, fc.bigInt({ min: 1n, max: (1n << 1000n) }), (k, cid, c0) => {
        const { n } = k.params
        const c = c0 % (n - 1n) + 1n
        const eT = priceExponent(cid)
        const keyT = termsKey(k, eT)
        const plain = rawPrivate(keyT, c, n)
        const { b, r } = blind(c, eT, n)
        assert.ok(r >= 1n && r < n)
        assert.notEqual(b, c)
        const x = unblind(rawPrivate(keyT, b, n), r, n)
        assert.equal(x, plain)
        checkUnblinded(x, c, eT, n)
        assert.equal(rawPublic(x, eT, n), c)
      }), { numRuns: 25 })
    })

    it('an answer computed under other terms fails the check', () => {
      fc.assert(fc.property(escrowArb(), cidArb, cidArb, fc.bigInt({ min: 2n, max: (1n << 1000n) }), (k, cid, otherCid, x0) => {
        const eT = priceExponent(cid)
        const eOther = priceExponent(otherCid)
        fc.pre(eT !== eOther)
        const { n } = k.params
        const x = x0 % (n - 3n) + 2n
        const c = rawPublic(x, eT, n)
        const { b, r } = blind(c, eT, n)
        const xOther = unblind(rawPrivate(termsKey(k, eOther), b, n), r, n)
        assert.notEqual(xOther, x)
        assert.throws(() => { checkUnblinded(xOther, c, eT, n) }, { name: 'BlindCheckError', code: 'ERR_BLIND_CHECK' })
        // and so does an answer with the escrow's ordinary exponent d
        const xPlainD = unblind(rawPrivate(k.privateKey, b, n), r, n)
        assert.throws(() => { checkUnblinded(xPlainD, c, eT, n) }, { code: 'ERR_BLIND_CHECK' })
      }), { numRuns: 20 })
    })

    it('a wrong or garbage answer fails the check', () => {
      const k = escrows[2] as TestKey
      const { n } = k.params
      const eT = priceExponent(Uint8Array.of(1, 2, 3))
      const x = 123456789n
      const c = rawPublic(x, eT, n)
      const { b, r } = blind(c, eT, n)
      const z = rawPrivate(termsKey(k, eT), b, n)
      checkUnblinded(unblind(z, r, n), c, eT, n)
      assert.throws(() => { checkUnblinded(unblind((z + 1n) % n, r, n), c, eT, n) }, { code: 'ERR_BLIND_CHECK' })
      assert.throws(() => { checkUnblinded(unblind(z, (r + 1n) % n, n), c, eT, n) }, { code: 'ERR_BLIND_CHECK' })
      assert.throws(() => { checkUnblinded(n, c, eT, n) }, { code: 'ERR_BLIND_CHECK' })
    })

    it('an inverse computed ahead unblinds the same x, and a wrong one is not used', () => {
      fc.assert(fc.property(escrowArb(), cidArb, fc.bigInt({ min: 2n, max: (1n << 1000n) }), fc.bigInt({ min: 2n, max: (1n << 1000n) }), (k, cid, x0, junk) => {
        const { n } = k.params
        const eT = priceExponent(cid)
        const x = x0 % (n - 3n) + 2n
        const c = rawPublic(x, eT, n)
        const { b, r } = blind(c, eT, n)
        const rInv = blindingInverse(r, n)
        assert.equal((r * rInv) % n, 1n)
        const z = rawPrivate(termsKey(k, eT), b, n)
        assert.equal(unblind(z, r, n, rInv), x)
        // an inverse of another r (a stale cache) would blame a correct escrow: it is ignored
        const wrong = junk % (n - 1n) + 1n
        fc.pre((r * wrong) % n !== 1n)
        assert.equal(unblind(z, r, n, wrong), x)
        checkUnblinded(unblind(z, r, n, wrong), c, eT, n)
      }), { numRuns: 20 })
      const { n, p } = (escrows[0] as TestKey).params
      assert.throws(() => blindingInverse(p, n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => blindingInverse(0n, n), { code: 'ERR_OUT_OF_RANGE' })
    })

    it('a factor drawn ahead blinds as blind does with the same r, and its answer unblinds and checks', () => {
      fc.assert(fc.property(escrowArb(), cidArb, fc.bigInt({ min: 2n, max: (1n << 1000n) }), fc.bigInt({ min: 1n, max: (1n << 1000n) }), (k, cid, x0, r0) => {
        const { n } = k.params
        const eT = priceExponent(cid)
        const imported = rawPublicKey(n, eT)
        assert.ok(imported != null)
        const x = x0 % (n - 3n) + 2n
        const c = rawPublic(x, eT, n, imported)
        assert.equal(c, rawPublicBigInt(x, eT, n))
        const r = r0 % (n - 1n) + 1n
        fc.pre(r % k.params.p !== 0n && r % k.params.q !== 0n)
        const factor = blindingFactor(eT, n, r, imported)
        assert.equal(factor.rE, rawPublicBigInt(r, eT, n))
        assert.equal((r * factor.rInv) % n, 1n)
        assert.equal(blindWith(c, factor, n), blind(c, eT, n, r).b)
        const drawn = blindingFactor(eT, n)
        const z = rawPrivate(termsKey(k, eT), blindWith(c, drawn, n), n)
        checkUnblinded(unblind(z, drawn.r, n, drawn.rInv), c, eT, n, imported)
      }), { numRuns: 20 })
    })

    it('refuses a factor or an imported key of another modulus or exponent, and r outside Z*_n', () => {
      const [a, b] = escrows as [TestKey, TestKey]
      const eT = priceExponent(Uint8Array.of(7))
      const factor = blindingFactor(eT, a.params.n)
      assert.throws(() => blindWith(5n, factor, b.params.n), { code: 'ERR_INVALID_ARG' })
      assert.throws(() => blindWith(0n, factor, a.params.n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => blindingFactor(eT, a.params.n, a.params.p), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => rawPublic(5n, eT, b.params.n, rawPublicKey(a.params.n, eT)), { code: 'ERR_RSA_KEY' })
      assert.throws(() => rawPublic(5n, eT + 2n, a.params.n, rawPublicKey(a.params.n, eT)), { code: 'ERR_RSA_KEY' })
      // OpenSSL does not take an even modulus: BigInt computes those
      assert.equal(rawPublicKey(a.params.n + 1n, eT), undefined)
    })

    it('rejects r outside Z*_n and c outside [1, n − 1]', () => {
      const { n, p } = (escrows[0] as TestKey).params
      const eT = priceExponent(Uint8Array.of(9))
      assert.throws(() => blind(5n, eT, n, p), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => blind(5n, eT, n, 0n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => blind(5n, eT, n, n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => blind(0n, eT, n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => blind(n, eT, n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => unblind(5n, p, n), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => unblind(n, 3n, n), { code: 'ERR_OUT_OF_RANGE' })
    })
  })

  describe('share wrap', () => {
    it('wrap → escrow private op → unwrap round-trips', () => {
      fc.assert(fc.property(escrowArb(), cidArb, saltArb, saltArb, fc.integer({ min: 1, max: 5 }), (k, cid, contentSalt, offerSalt, j) => {
        const { n } = k.params
        const eT = priceExponent(cid)
        const share = splitSecret(new Uint8Array(randomBytes(32)), 2, 5)[j - 1] ?? new Uint8Array()
        const { c, dem } = wrapShare({ n, eT, j, share, contentSalt, offerSalt })
        assert.equal(dem.length, 12 + 68 + 16)
        const { b, r } = blind(c, eT, n)
        const x = unblind(rawPrivate(termsKey(k, eT), b, n), r, n)
        checkUnblinded(x, c, eT, n)
        assert.ok(x >= 2n && x <= n - 2n)
        assert.deepEqual(unwrapShare({ x, n, j, dem, contentSalt, offerSalt }), share)
      }), { numRuns: 20 })
    })

    it('wrong x, j, salts or a flipped bit fail with ERR_SHARE_AUTH', () => {
      fc.assert(fc.property(saltArb, saltArb, fc.nat(), (contentSalt, offerSalt, bit) => {
        const k = escrows[0] as TestKey
        const { n } = k.params
        const eT = priceExponent(Uint8Array.of(7))
        const shares = splitSecret(new Uint8Array(32).fill(1), 2, 3)
        const share = shares[1] ?? new Uint8Array()
        const x = 0xdeadbeefn
        const { dem } = wrapShare({ n, eT, j: 2, share, contentSalt, offerSalt, x })
        const auth = { name: 'ShareAuthError', code: 'ERR_SHARE_AUTH' }
        const other = new Uint8Array(contentSalt)
        other[bit % 16] = (other[bit % 16] ?? 0) ^ 0x80
        const flipped = new Uint8Array(dem)
        const at = bit % (dem.length * 8)
        flipped[at >> 3] = (flipped[at >> 3] ?? 0) ^ (1 << (at & 7))
        assert.throws(() => unwrapShare({ x: x + 1n, n, j: 2, dem, contentSalt, offerSalt }), auth)
        assert.throws(() => unwrapShare({ x, n, j: 3, dem, contentSalt, offerSalt }), auth)
        assert.throws(() => unwrapShare({ x, n, j: 2, dem, contentSalt: other, offerSalt }), auth)
        assert.throws(() => unwrapShare({ x, n, j: 2, dem, contentSalt, offerSalt: other }), auth)
        assert.throws(() => unwrapShare({ x, n, j: 2, dem: flipped, contentSalt, offerSalt }), auth)
        assert.throws(() => unwrapShare({ x, n, j: 2, dem: dem.subarray(1), contentSalt, offerSalt }), auth)
        assert.deepEqual(unwrapShare({ x, n, j: 2, dem, contentSalt, offerSalt }), share)
      }), { numRuns: 30 })
    })

    it('kek depends on x, j and content salt; input checks', () => {
      const { n } = (escrows[0] as TestKey).params
      const salt = new Uint8Array(16)
      const k1 = shareKek(5n, n, 1, salt)
      assert.equal(k1.length, 32)
      assert.notDeepEqual(shareKek(6n, n, 1, salt), k1)
      assert.notDeepEqual(shareKek(5n, n, 2, salt), k1)
      assert.notDeepEqual(shareKek(5n, n, 1, new Uint8Array(16).fill(1)), k1)
      assert.throws(() => shareKek(1n, n, 1, salt), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => shareKek(n - 1n, n, 1, salt), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => shareKek(5n, n, 0, salt), { code: 'ERR_INVALID_ARG' })
      const share = splitSecret(new Uint8Array(32), 1, 2)[1] ?? new Uint8Array()
      const eT = priceExponent(Uint8Array.of(1))
      // share 2 cannot be wrapped as share 1
      assert.throws(() => wrapShare({ n, eT, j: 1, share, contentSalt: salt, offerSalt: salt }), { code: 'ERR_BAD_SHARE' })
      assert.throws(() => wrapShare({ n, eT, j: 2, share, contentSalt: salt, offerSalt: salt, x: 1n }), { code: 'ERR_OUT_OF_RANGE' })
      assert.throws(() => wrapShare({ n, eT, j: 2, share, contentSalt: salt, offerSalt: salt, nonce: new Uint8Array(8) }), { code: 'ERR_INVALID_ARG' })
    })
  })

  describe('device-bound split', () => {
    it('K_esc = K ⊕ K_dev recombines; K_dev = 0 is an open offer', () => {
      fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (k, kDev) => {
        assert.deepEqual(combineDeviceBound(splitDeviceBound(k, kDev), kDev), k)
        assert.deepEqual(splitDeviceBound(k, openOfferDeviceKey()), k)
      }))
      assert.throws(() => splitDeviceBound(new Uint8Array(31), new Uint8Array(32)), { code: 'ERR_INVALID_ARG' })
    })

    it('RSA-OAEP-SHA256 wrap/unwrap of K_dev; a wrong key or ciphertext fails', () => {
      const other = generateRsa(2048)
      for (let i = 0; i < 5; i++) {
        const kDev = new Uint8Array(randomBytes(32))
        const ct = wrapDeviceKey(kDev, device.publicKey)
        assert.equal(ct.length, 256)
        assert.deepEqual(unwrapDeviceKey(ct, device.privateKey), kDev)
        assert.throws(() => unwrapDeviceKey(ct, other.privateKey), { name: 'DeviceKeyError', code: 'ERR_DEVICE_KEY' })
        const bad = new Uint8Array(ct)
        bad[i] = (bad[i] ?? 0) ^ 1
        assert.throws(() => unwrapDeviceKey(bad, device.privateKey), { code: 'ERR_DEVICE_KEY' })
      }
      assert.throws(() => wrapDeviceKey(new Uint8Array(32), smallDevice.publicKey), { code: 'ERR_RSA_KEY' })
      assert.throws(() => unwrapDeviceKey(new Uint8Array(256), device.publicKey), { code: 'ERR_RSA_KEY' })
    })
  })

  it('a whole 2-of-3 device-bound sale: seller wraps, device buys 2 shares blind, rebuilds K and plays', async () => {
    // seller
    const secrets = generateContentSecrets()
    const plaintext = new Uint8Array(randomBytes(5000))
    const enc = encryptContent([plaintext], { ...secrets, chunkSize: 1024 })
    const chunks = await collect(enc)
    const manifest = enc.manifest()
    const kc = keyCommitment(secrets.key)
    const kDev = new Uint8Array(randomBytes(32))
    const kEsc = splitDeviceBound(secrets.key, kDev)
    const shares = splitSecret(kEsc, 2, 3)
    const termsCid = new Uint8Array(randomBytes(36))
    const eT = priceExponent(termsCid)
    const offerSalt = new Uint8Array(randomBytes(16))
    const wrapped = shares.map((share, i) => wrapShare({ n: escrows[i]?.params.n ?? 0n, eT, j: i + 1, share, contentSalt: manifest.salt, offerSalt }))
    const licence = wrapDeviceKey(kDev, device.publicKey)
    // escrow 1 is faulty (answers under its ordinary d); the device drops it and asks escrow 3
    const got: Uint8Array[] = []
    for (const j of [1, 2, 3]) {
      if (got.length === 2) break
      const k = escrows[j - 1] as TestKey
      const w = wrapped[j - 1]
      assert.ok(w !== undefined)
      const { n } = k.params
      const { b, r } = blind(w.c, eT, n)
      const z = j === 1 ? rawPrivate(k.privateKey, b, n) : rawPrivate(termsKey(k, eT), b, n)
      const x = unblind(z, r, n)
      try {
        checkUnblinded(x, w.c, eT, n)
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_BLIND_CHECK')
        assert.equal(j, 1)
        continue
      }
      got.push(unwrapShare({ x, n, j, dem: w.dem, contentSalt: manifest.salt, offerSalt }))
    }
    const key = combineDeviceBound(combineShares(got, 2), unwrapDeviceKey(licence, device.privateKey))
    assert.ok(verifyKeyCommitment(key, kc))
    const out = await collect(decryptContent(chunks, manifest, key))
    assert.deepEqual(Buffer.concat(out), Buffer.from(plaintext))
    // all escrows together only have K_esc, which is not K
    assert.ok(!verifyKeyCommitment(combineShares(shares, 2), kc))
  })

  it('bigint helpers agree with the definitions', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 1n << 200n }), fc.bigInt({ min: 0n, max: 1n << 64n }), (a, e) => {
      const m = (1n << 127n) - 1n // prime
      const ar = a % m === 0n ? 1n : a
      assert.equal((ar * modInverse(ar, m)) % m, 1n)
      let naive = 1n
      const small = e % 50n
      for (let i = 0n; i < small; i++) naive = (naive * a) % m
      assert.equal(modPow(a, small, m), naive)
    }))
    assert.throws(() => modInverse(6n, 9n), { code: 'ERR_INVALID_ARG' })
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 1n << 5000n }), x => {
      assert.equal(bitLength(x), x === 0n ? 0 : x.toString(2).length)
    }))
    for (let i = 0n; i < 4100n; i++) for (const x of [(1n << i) - 1n, 1n << i]) assert.equal(bitLength(x), x === 0n ? 0 : x.toString(2).length)
    assert.throws(() => bitLength(-1n), { code: 'ERR_OUT_OF_RANGE' })
  })

  it("modInverse (Lehmer's steps) gives exactly what plain extended Euclid gives, at every size", () => {
    // the textbook algorithm, one quotient per step: the reference
    const euclid = (a: bigint, m: bigint): bigint | 'none' => {
      let [r0, r1] = [((a % m) + m) % m, m]
      let [s0, s1] = [1n, 0n]
      while (r1 !== 0n) {
        const q = r0 / r1;
        [r0, r1] = [r1, r0 - q * r1];
        [s0, s1] = [s1, s0 - q * s1]
      }
      return r0 === 1n ? ((s0 % m) + m) % m : 'none'
    }
    const ours = (a: bigint, m: bigint): bigint | 'none' => {
      try {
        return modInverse(a, m)
      } catch (err: any) {
        assert.equal(err.code, 'ERR_INVALID_ARG')
        return 'none'
      }
    }
    const big = (maxBits: number): fc.Arbitrary<bigint> => fc.integer({ min: 1, max: maxBits }).chain(bits => fc.bigInt({ min: 1n, max: (1n << BigInt(bits)) - 1n }))
    fc.assert(fc.property(big(4096), big(4096), fc.boolean(), (m, a, negative) => {
      const x = negative ? -a : a
      assert.equal(ours(x, m), euclid(x, m))
    }), { numRuns: 300 })
    // shared factors far above the 64 bits where the plain steps take over
    fc.assert(fc.property(big(1500), big(1500), big(1500), (f, a, b) => {
      const g = f | 1n
      if (g === 1n) return
      assert.equal(ours(g * a, g * b), 'none')
    }), { numRuns: 100 })
    // a 3072-bit modulus, as the device's blinding factors use
    const { n } = rsaPrivateParams(generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey)
    for (let i = 0; i < 20; i++) {
      const r = os2ip(randomBytes(384)) % n
      assert.equal((r * modInverse(r, n)) % n, 1n)
      assert.equal(modInverse(r, n), euclid(r, n))
    }
  })
})
