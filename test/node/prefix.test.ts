import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encode as lpVarint } from 'uint8-varint'
import { FrameTooLargeError } from '../../protocols/errors.ts'
import { MAX_PREFIX_BYTES, PrefixReader, prefixLength, varint } from '../../protocols/toolkit/prefix.ts'

/** feeds `bytes` one by one: what each push returned */
function pushAll (reader: PrefixReader, bytes: Uint8Array): number[] {
  return Array.from(bytes, byte => reader.push(byte))
}

describe('frame length prefix', () => {
  it('writes the varint lpStream writes, and reads each one back at its last byte', () => {
    const reader = new PrefixReader()
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 48 }), length => {
      const bytes = varint(length)
      assert.deepEqual(bytes, lpVarint(length))
      assert.equal(bytes.length, prefixLength(length))
      const seen = pushAll(reader, bytes)
      assert.deepEqual(seen.slice(0, -1), new Array(bytes.length - 1).fill(-1))
      assert.equal(seen.at(-1), length)
      assert.equal(reader.started, false)
    }))
  })

  it('says a prefix is under way between its first and last byte', () => {
    const reader = new PrefixReader()
    assert.equal(reader.started, false)
    assert.equal(reader.push(0x80 | 5), -1)
    assert.equal(reader.started, true)
    assert.equal(reader.push(1), 5 + 128)
    assert.equal(reader.started, false)
  })

  it(`refuses a prefix whose ${MAX_PREFIX_BYTES}th byte still says more follow`, () => {
    const reader = new PrefixReader()
    for (let i = 1; i < MAX_PREFIX_BYTES; i++) assert.equal(reader.push(0x80), -1)
    assert.throws(() => reader.push(0x80), FrameTooLargeError)
    // a padded prefix that ends within the limit still reads
    const padded = new PrefixReader()
    const bytes = [...new Array(MAX_PREFIX_BYTES - 1).fill(0x80), 0]
    assert.equal(pushAll(padded, Uint8Array.from(bytes)).at(-1), 0)
  })
})
