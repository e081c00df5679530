import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)
const SCRIPT = fileURLToPath(new URL('../helpers/stream-file.ts', import.meta.url))
const GIB = 1024 * 1024 * 1024

describe('streaming content encryption of a 1 GiB file', function () {
  this.timeout(300_000)
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-gib-'))
  })

  after(async function () {
    await rm(dir, { recursive: true, force: true })
  })

  it('encrypts and decrypts 1 GiB through the file API with peak RSS under 200 MB', async function () {
    // a fresh process, so its peak RSS is this work's alone
    const { stdout } = await run(process.execPath, [SCRIPT, dir, String(GIB)], { maxBuffer: 1 << 20 })
    const result = JSON.parse(stdout)
    assert.equal(result.bytes, GIB)
    assert.equal(result.chunkCount, 1024)
    assert.equal(result.outHash, result.plainHash, 'decrypted output equals the plaintext')
    assert.ok(result.maxRssBytes < 200e6, `peak RSS ${(result.maxRssBytes / 1e6).toFixed(1)} MB`)
    console.log(`      1 GiB: peak RSS ${(result.maxRssBytes / 1e6).toFixed(1)} MB, encrypt ${result.encryptMBps.toFixed(0)} MB/s, decrypt ${result.decryptMBps.toFixed(0)} MB/s (file to file)`)
  })
})
