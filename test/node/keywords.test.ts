import assert from 'node:assert/strict'
import fc from 'fast-check'
import { loadVectors } from '../helpers/vectors.ts'
import { escrowServiceCid, keywordCid, keywordsOf, normaliseKeyword } from '../../node/discovery/keywords.ts'

const vectors = loadVectors()

describe('keyword CIDs (docs/protocol.md Keywords, known-answer vectors)', function () {
  for (const v of vectors.keywords as Array<{ word: string, normalised: string, cid: string }>) {
    it(`${JSON.stringify(v.word)} -> ${v.cid}`, function () {
      assert.equal(normaliseKeyword(v.word), v.normalised)
      assert.equal(keywordCid(v.word).toString(), v.cid)
    })
  }

  it('escrow service CID', function () {
    assert.equal(escrowServiceCid().toString(), vectors.escrow_service_cid)
  })

  it('splits titles and tags into normalised, de-duplicated keywords', function () {
    assert.deepEqual(keywordsOf('Live at the Café', 'jazz, LIVE;  ＪＡＺＺ'), ['live', 'at', 'the', 'café', 'jazz'])
    assert.deepEqual(keywordsOf('  ', ''), [])
  })

  it('normalisation is idempotent and the CID depends only on the normalised word', function () {
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 30 }), word => {
      const n = normaliseKeyword(word)
      assert.equal(normaliseKeyword(n), n)
      if (n.length > 0 && n.length <= 64) assert.equal(keywordCid(word).toString(), keywordCid(n).toString())
    }))
  })

  it('trims exactly the code points docs/protocol.md lists: U+FEFF yes; U+0085, U+001C..U+001F, U+180E no', function () {
    const trimmed = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]
    for (const c of trimmed) assert.equal(normaliseKeyword(`${String.fromCodePoint(c)}jazz${String.fromCodePoint(c)}`), 'jazz', `U+${c.toString(16)}`)
    for (const c of [0x85, 0x1c, 0x1d, 0x1e, 0x1f, 0x180e]) {
      const ch = String.fromCodePoint(c)
      assert.equal(normaliseKeyword(`${ch}jazz${ch}`), `${ch}jazz${ch}`, `U+${c.toString(16)} kept`)
    }
  })

  it('refuses empty and over-long keywords with a typed error', function () {
    assert.throws(() => keywordCid('   '), { code: 'ERR_BAD_REQUEST' })
    assert.throws(() => keywordCid('x'.repeat(65)), { code: 'ERR_BAD_REQUEST' })
  })
})
