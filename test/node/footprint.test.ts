// What a node process loads stays what it uses: every module loaded is resident for the
// node's whole life. Checked in a fresh process that loads everything `keyfair start` does.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'

describe('node footprint', function () {
  this.timeout(60_000)

  it('loading the node does not load Node\'s bundled fetch (undici, ~15 MB resident)', function () {
    const cli = new URL('../../node/cli.ts', import.meta.url).href
    const script = `await import(${JSON.stringify(cli)}); process.stdout.write(JSON.stringify(process.moduleLoadList.filter(m => m.includes('undici'))))`
    const loaded = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }))
    assert.deepEqual(loaded, [])
  })
})
