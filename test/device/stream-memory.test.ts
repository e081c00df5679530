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

  it('encrypts and decrypts 1 GiB through the file API, each in under 200 MB and growing little past its start', async function () {
    // fresh processes, so each peak RSS is that phase's work alone
    const phase = async (name: string): Promise<any> => JSON.parse((await run(process.execPath, [SCRIPT, dir, String(GIB), name], { maxBuffer: 1 << 20 })).stdout)
    const encrypted = await phase('encrypt')
    const decrypted = await phase('decrypt')
    assert.equal(encrypted.chunkCount, 1024)
    assert.equal(decrypted.bytes, GIB)
    assert.equal(decrypted.outHash, encrypted.plainHash, 'decrypted output equals the plaintext')
    for (const [name, r] of [['encrypt', encrypted], ['decrypt', decrypted]] as const) {
      assert.ok(r.peakRssBytes < 200e6, `${name}: peak RSS ${(r.peakRssBytes / 1e6).toFixed(1)} MB`)
      // a young-generation sweep every 4 MiB (DEVICE_SWEEP_BYTES): V8 alone lets ~64 MB of
      // spent chunk buffers pile up outside its heap before it collects them
      const growth = r.peakRssBytes - r.beforeRssBytes
      assert.ok(growth < 40e6, `${name}: RSS grew by ${(growth / 1e6).toFixed(1)} MB while streaming`)
    }
    const mb = (n: number): string => (n / 1e6).toFixed(1)
    console.log(`      1 GiB: encrypt ${encrypted.MBps.toFixed(0)} MB/s, peak ${mb(encrypted.peakRssBytes)} MB (+${mb(encrypted.peakRssBytes - encrypted.beforeRssBytes)}); ` +
      `decrypt ${decrypted.MBps.toFixed(0)} MB/s, peak ${mb(decrypted.peakRssBytes)} MB (+${mb(decrypted.peakRssBytes - decrypted.beforeRssBytes)}) (file to file)`)
  })
})
