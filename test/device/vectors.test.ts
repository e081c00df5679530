// Known-answer vectors from the independent implementation (test/fixtures/vectors-v1.json)
import assert from 'node:assert/strict'
import {
  blind, checkUnblinded, chunkAad, chunkNonce, combineShares, combineDeviceBound, decryptContent,
  encryptContent, escrowKeyForTerms, importRsaPrivateKey, keyCommitment, openChunk, priceExponent,
  privateExponent, rawPrivate, rawPublic, sealChunk, shareKek, splitDeviceBound, splitSecret,
  unblind, unwrapDeviceKey, unwrapShare, verifyChunk, verifyKeyCommitment, wrapShare
} from '../../device/crypto/index.ts'
import { concat, toHex, u32 } from '../../device/crypto/bytes.ts'
import { collect, hex, int, loadVectors, vectorKey } from './fixtures.ts'

const V = loadVectors()

describe('device/crypto known-answer vectors (v1.json)', () => {
  describe('content', () => {
    const key = hex(V.content.K)
    const salt = hex(V.content.salt)
    const noncePrefix = hex(V.content.nonce_prefix)

    it('has the four works of the vectors, the first empty', () => {
      assert.equal(V.content.works.length, 4)
      assert.equal(V.content.works[0]?.plaintext, '')
    })

    V.content.works.forEach((work, w) => {
      it(`work ${w}: ${work.plaintext.length / 2} bytes in chunks of ${work.chunk_size}`, async () => {
        const plaintext = hex(work.plaintext)
        // feed the plaintext in odd pieces so re-chunking is exercised too
        const pieces: Uint8Array[] = []
        for (let i = 0; i < plaintext.length; i += 7) pieces.push(plaintext.subarray(i, i + 7))
        const enc = encryptContent(pieces, { key, salt, noncePrefix, chunkSize: work.chunk_size })
        const sealed = await collect(enc)
        const manifest = enc.manifest()
        assert.equal(sealed.length, work.chunks.length)
        assert.equal(manifest.chunkCount, work.chunks.length)
        assert.equal(manifest.size, plaintext.length)
        work.chunks.forEach((c, i) => {
          const chunk = sealed[i]
          assert.ok(chunk !== undefined)
          assert.equal(chunk.index, i)
          assert.equal(chunk.last, i === work.chunks.length - 1)
          assert.equal(toHex(chunk.data), c.ciphertext_and_tag)
          assert.equal(toHex(manifest.chunkHashes[i] ?? new Uint8Array()), c.sha256)
          assert.ok(verifyChunk(manifest, i, hex(c.ciphertext_and_tag)))
          // the single-chunk API agrees with the stream
          const pt = plaintext.subarray(i * work.chunk_size, (i + 1) * work.chunk_size)
          const last = i === work.chunks.length - 1
          assert.equal(toHex(sealChunk({ key, salt, noncePrefix, index: i, last, plaintext: pt })), c.ciphertext_and_tag)
          assert.deepEqual(openChunk({ key, salt, noncePrefix, index: i, last, data: hex(c.ciphertext_and_tag) }), pt)
        })
        const stored = work.chunks.map((c, index) => ({ index, data: hex(c.ciphertext_and_tag) }))
        const out = await collect(decryptContent(stored, manifest, key))
        assert.equal(toHex(concat(...out)), work.plaintext)
      })
    })

    it('nonce and AAD layouts', () => {
      assert.equal(toHex(chunkNonce(noncePrefix, 2)), V.content.nonce_prefix + '00000002')
      assert.equal(toHex(chunkAad(salt, 2, true)), V.content.salt + '0000000201')
      assert.equal(toHex(chunkAad(salt, 0, false)), V.content.salt + '0000000000')
      assert.equal(toHex(u32(0x01020304)), '01020304')
    })
  })

  it('key_commitment', () => {
    assert.equal(toHex(keyCommitment(hex(V.key_commitment.K))), V.key_commitment.kc)
    assert.ok(verifyKeyCommitment(hex(V.key_commitment.K), hex(V.key_commitment.kc)))
  })

  describe('shamir', () => {
    const S = V.shamir

    it('reproduces all shares from the given coefficients', () => {
      assert.equal(int(S.coefficients_int[0] ?? ''), int(S.secret), 'a_0 is the secret')
      const shares = splitSecret(hex(S.secret), S.t, S.n, (i) => int(S.coefficients_int[i] ?? ''))
      assert.deepEqual(shares.map(toHex), S.shares)
    })

    it('rebuilds the secret from each listed set of 3', () => {
      assert.ok(S.any_3_rebuild.length > 0)
      for (const set of S.any_3_rebuild) {
        const subset = set.map((i) => hex(S.shares[i] ?? ''))
        assert.equal(toHex(combineShares(subset, S.t)), S.secret)
      }
    })
  })

  describe('escrow key and price exponent', () => {
    const key = vectorKey(V.escrow_key)

    it('escrow key imports (n = p·q, e·d ≡ 1 mod λ)', () => {
      importRsaPrivateKey(key)
    })

    V.price_exponent.forEach((pe, i) => {
      it(`price_exponent[${i}]: e_T and d_T`, () => {
        const eT = priceExponent(hex(pe.terms_cid))
        assert.equal(eT.toString(16), pe.e_T_int)
        assert.equal(privateExponent(eT, key.p, key.q).toString(16), pe.d_T_int)
      })
    })
  })

  describe('share_wrap', () => {
    const W = V.share_wrap
    const { n, p, q } = vectorKey(V.escrow_key)
    const eT = int(V.price_exponent[0]?.e_T_int ?? '')

    it('kek, c and dem with the given x and nonce', () => {
      const x = int(W.x_int)
      assert.equal(toHex(shareKek(x, n, W.j, hex(W.content_salt))), W.kek)
      const { c, dem } = wrapShare({
        n, eT, j: W.j, share: hex(W.share), contentSalt: hex(W.content_salt), offerSalt: hex(W.offer_salt), x, nonce: hex(W.nonce)
      })
      assert.equal(c.toString(16), W.c_int)
      assert.equal(rawPublic(x, eT, n), c)
      assert.equal(toHex(dem), W.dem)
      assert.equal(W.share, V.shamir.shares[W.j - 1], 'the wrapped share is share j of the shamir vector')
    })

    it('the escrow key for these terms recovers x from c, and x opens the dem', () => {
      const keyT = escrowKeyForTerms({ n, p, q }, eT)
      const x = rawPrivate(keyT, int(W.c_int), n)
      assert.equal(x.toString(16), W.x_int)
      const share = unwrapShare({ x, n, j: W.j, dem: hex(W.dem), contentSalt: hex(W.content_salt), offerSalt: hex(W.offer_salt) })
      assert.equal(toHex(share), W.share)
    })
  })

  describe('blinding', () => {
    const B = V.blinding
    const { n, p, q } = vectorKey(V.escrow_key)
    const eT = int(V.price_exponent[0]?.e_T_int ?? '')
    const eOther = int(V.price_exponent[1]?.e_T_int ?? '')
    const c = int(V.share_wrap.c_int)
    const r = int(B.r_int)

    it('b = c·r^e_T, z under d_T, x = z·r^-1 passes the check', () => {
      const { b } = blind(c, eT, n, r)
      assert.equal(b.toString(16), B.b_int)
      const z = rawPrivate(escrowKeyForTerms({ n, p, q }, eT), b, n)
      assert.equal(z.toString(16), B.z_int)
      const x = unblind(z, r, n)
      assert.equal(x.toString(16), B.x_int)
      assert.equal(B.x_int, V.share_wrap.x_int)
      checkUnblinded(x, c, eT, n)
    })

    it('z under other terms (d of price_exponent[1]) fails the check', () => {
      const b = int(B.b_int)
      const zOther = rawPrivate(escrowKeyForTerms({ n, p, q }, eOther), b, n)
      assert.equal(zOther.toString(16), B.z_under_other_terms_int)
      const xOther = unblind(zOther, r, n)
      assert.throws(() => { checkUnblinded(xOther, c, eT, n) }, { name: 'BlindCheckError', code: 'ERR_BLIND_CHECK' })
    })
  })

  describe('device_bound', () => {
    const D = V.device_bound

    it('K_esc = K ⊕ K_dev and back', () => {
      assert.equal(toHex(splitDeviceBound(hex(D.K), hex(D.K_dev))), D.K_esc)
      assert.equal(toHex(combineDeviceBound(hex(D.K_esc), hex(D.K_dev))), D.K)
      assert.equal(D.K, V.content.K)
    })

    it('RSA-OAEP-SHA256 unwrap of K_dev with the device key', () => {
      const deviceKey = importRsaPrivateKey(vectorKey(D.device_key))
      assert.equal(toHex(unwrapDeviceKey(hex(D.oaep_sha256_ciphertext), deviceKey)), D.K_dev)
    })
  })
})
