// Shamir t-of-n over GF(2^521 − 1)
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  combineShares, FIELD_PRIME, parseShare, randomFieldElement, SHARE_LENGTH, splitSecret
} from '../../device/crypto/shamir.ts'
import { i2osp, u16, concat } from '../../device/crypto/bytes.ts'
import { keyCommitment, verifyKeyCommitment } from '../../device/crypto/commit.ts'

const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 })

// t, n, and a random ordering of share positions
const schemeArb = fc.integer({ min: 1, max: 7 })
  .chain((t) => fc.integer({ min: t, max: 9 }).map((n) => ({ t, n })))
  .chain(({ t, n }) => fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }).map((order) => ({ t, n, order })))

describe('shamir over GF(2^521 - 1)', () => {
  it('any t of n shares rebuild the secret, in any order', () => {
    fc.assert(fc.property(secretArb, schemeArb, (secret, { t, n, order }) => {
      const shares = splitSecret(secret, t, n)
      assert.equal(shares.length, n)
      shares.forEach((s, i) => {
        assert.equal(s.length, SHARE_LENGTH)
        assert.equal(parseShare(s).j, i + 1)
      })
      const subset = order.slice(0, t).map((i) => shares[i] ?? new Uint8Array())
      assert.deepEqual(combineShares(subset, t), secret)
      // more than t shares: the first t are used, the rest are only checked
      assert.deepEqual(combineShares(order.map((i) => shares[i] ?? new Uint8Array()), t), secret)
    }), { numRuns: 200 })
  })

  it('t − 1 shares are refused, and interpolating them gives a different value or an error', () => {
    fc.assert(fc.property(secretArb, schemeArb.filter(({ t }) => t >= 2), (secret, { t, n, order }) => {
      const shares = splitSecret(secret, t, n)
      const subset = order.slice(0, t - 1).map((i) => shares[i] ?? new Uint8Array())
      assert.throws(() => combineShares(subset, t), { name: 'TooFewSharesError', code: 'ERR_TOO_FEW_SHARES' })
      let rebuilt: Uint8Array | undefined
      try {
        rebuilt = combineShares(subset, t - 1)
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_SHARES_INCONSISTENT')
      }
      if (rebuilt !== undefined) assert.notDeepEqual(rebuilt, secret)
    }), { numRuns: 200 })
  })

  it('a random wrong share among t is detected (result not a 256-bit value)', () => {
    fc.assert(fc.property(secretArb, schemeArb.filter(({ t }) => t >= 2), fc.nat(), (secret, { t, n, order }, which) => {
      const shares = splitSecret(secret, t, n)
      const subset = order.slice(0, t).map((i) => shares[i] ?? new Uint8Array())
      const k = which % t
      const j = parseShare(subset[k] ?? new Uint8Array()).j
      subset[k] = concat(u16(j), i2osp(randomFieldElement(), 66))
      assert.throws(() => combineShares(subset, t), { code: 'ERR_SHARES_INCONSISTENT' })
    }), { numRuns: 100 })
  })

  it('a slightly altered share can still combine, so the key commitment is the real check', () => {
    const secret = new Uint8Array(32).fill(0x10)
    const shares = splitSecret(secret, 2, 2).map((s) => new Uint8Array(s))
    const s0 = shares[0] ?? new Uint8Array()
    s0[SHARE_LENGTH - 1] = (s0[SHARE_LENGTH - 1] ?? 0) ^ 1
    const rebuilt = combineShares(shares, 2)
    assert.notDeepEqual(rebuilt, secret)
    assert.ok(!verifyKeyCommitment(rebuilt, keyCommitment(secret)))
  })

  it('t = n = 1 is the single-escrow case: f(1) = K', () => {
    const secret = new Uint8Array(32).fill(9)
    const [share] = splitSecret(secret, 1, 1)
    assert.ok(share !== undefined)
    assert.deepEqual(share.subarray(2), i2osp(BigInt('0x' + '09'.repeat(32)), 66))
    assert.deepEqual(combineShares([share], 1), secret)
  })

  it('rejects malformed shares with typed errors', () => {
    const secret = new Uint8Array(32).fill(1)
    const shares = splitSecret(secret, 3, 5)
    const [s1, s2, s3] = shares as [Uint8Array, Uint8Array, Uint8Array]
    const bad = { name: 'BadShareError', code: 'ERR_BAD_SHARE' }
    assert.throws(() => combineShares([s1, s2, s1], 3), bad)
    assert.throws(() => combineShares([s1, s2, s3, s2], 3), bad)
    assert.throws(() => combineShares([s1, s2, concat(u16(0), s3.subarray(2))], 3), bad)
    assert.throws(() => combineShares([s1, s2, s3.subarray(1)], 3), bad)
    assert.throws(() => combineShares([s1, s2, concat(s3, new Uint8Array(1))], 3), bad)
    assert.throws(() => combineShares([s1, s2, concat(u16(3), i2osp(FIELD_PRIME, 66))], 3), bad)
    assert.throws(() => combineShares([s1, s2, concat(u16(3), new Uint8Array(66).fill(0xff))], 3), bad)
    assert.throws(() => combineShares([s1, s2], 3), { code: 'ERR_TOO_FEW_SHARES' })
    assert.throws(() => combineShares([], 1), { code: 'ERR_TOO_FEW_SHARES' })
    assert.throws(() => combineShares([s1, s2, s3], 0), { code: 'ERR_INVALID_ARG' })
    // a share value P − 1 is a field element, so it is accepted structurally
    assert.equal(parseShare(concat(u16(3), i2osp(FIELD_PRIME - 1n, 66))).j, 3)
  })

  it('rejects bad split parameters and coefficients', () => {
    const secret = new Uint8Array(32)
    const inv = { code: 'ERR_INVALID_ARG' }
    assert.throws(() => splitSecret(new Uint8Array(31), 1, 1), inv)
    assert.throws(() => splitSecret(secret, 0, 1), inv)
    assert.throws(() => splitSecret(secret, 3, 2), inv)
    assert.throws(() => splitSecret(secret, 2, 65536), inv)
    assert.throws(() => splitSecret(secret, 2, 3, () => FIELD_PRIME), inv)
    assert.throws(() => splitSecret(secret, 2, 3, () => -1n), inv)
  })

  it('random coefficients are field elements of full width', () => {
    let top = 0
    for (let i = 0; i < 200; i++) {
      const a = randomFieldElement()
      assert.ok(a >= 0n && a < FIELD_PRIME)
      if (a >= (1n << 520n)) top++
    }
    // about half should have bit 520 set
    assert.ok(top > 60 && top < 140, `top bit set ${top}/200`)
  })
})
