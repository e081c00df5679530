// The README's quick start, as a user pastes it: `scripts/quickstart-check.ts` runs its
// shell block word for word against a temporary directory; it must run to its end and
// leave nothing running.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { quickStartBlock } from '../scripts/quickstart-check.ts'
import { TEST_ENV } from './helpers/cli.ts'

const CHECK = new URL('../scripts/quickstart-check.ts', import.meta.url).pathname

describe('the README quick start', function () {
  this.timeout(400_000)

  it('is a shell block that starts a devnet, buys its sample work and stops it', async function () {
    const block = quickStartBlock(await readFile(new URL('../README.md', import.meta.url), 'utf8'))
    assert.match(block, /npx keyfair devnet/)
    assert.match(block, /npx keyfair buy/)
  })

  it('runs word for word to its end, the purchase equal to the sample, nothing left running', async function () {
    const { code, stdout, stderr } = await new Promise<{ code: number, stdout: string, stderr: string }>(resolve => {
      execFile(process.execPath, [CHECK], { env: { ...process.env, ...TEST_ENV }, timeout: 360_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
      })
    })
    assert.equal(code, 0, `${stderr}\n${stdout.slice(-2000)}`)
    assert.match(stdout, /^bought: the sample, byte for byte$/m)
    assert.match(stdout, /^devnet: stopped all 6 node processes$/m)
    assert.match(stdout, /quick start ran to its end/)
    assert.doesNotMatch(stderr, /left processes running/)
  })
})
