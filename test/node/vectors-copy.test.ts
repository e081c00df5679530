import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { SHARED_VECTORS_FILE, VECTORS_FILE } from '../helpers/vectors.ts'

describe('known-answer vectors', function () {
  it('the vendored copy is byte-identical to the upstream vectors (when a checkout has them beside it)', function () {
    if (!existsSync(SHARED_VECTORS_FILE)) {
      // a clone outside the workspace: only the vendored copy can be checked
      assert.equal(JSON.parse(readFileSync(VECTORS_FILE, 'utf8')).version, 1)
      return
    }
    assert.ok(readFileSync(VECTORS_FILE).equals(readFileSync(SHARED_VECTORS_FILE)))
  })
})
