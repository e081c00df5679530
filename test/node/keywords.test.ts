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

  it('refuses empty and over-long keywords with a typed error', function () {
    assert.throws(() => keywordCid('   '), { code: 'ERR_BAD_REQUEST' })
    assert.throws(() => keywordCid('x'.repeat(65)), { code: 'ERR_BAD_REQUEST' })
  })
})
