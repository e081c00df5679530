// `npm start` as a user runs it: the demo's whole purchase over 9 real node processes,
// then every file of every node's repo scanned for a private key or a content key in
// clear (the repos kept with --keep; the secrets unsealed with the product's own code).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { filesUnder, repoSecrets, scan } from './helpers/scan.ts'

const PASSPHRASE = 'demo scan passphrase'
const DEMO = new URL('../scripts/demo.ts', import.meta.url).pathname

describe('npm start', function () {
  this.timeout(600_000)
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-demo-test-'))
  })

  after(async function () {
    await rm(dir, { recursive: true, force: true })
  })

  it('runs the demo purchase to the end and leaves no private key or content key in clear in any repo', async function () {
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [DEMO, '--keep', dir], { env: { ...process.env, KEYFAIR_PASSPHRASE: PASSPHRASE }, maxBuffer: 16 << 20, timeout: 540_000 }, (err, stdout, stderr) => {
        if (err != null) reject(new Error(`the demo failed: ${stderr || err.message}\n${stdout.slice(-2000)}`))
        else resolve(stdout)
      })
    })
    assert.match(output, /demo complete/)
    assert.match(output, /device-bound licence from the seller/)
    assert.match(output, /seller \+2 × 300, each buyer −300, no hold left open/)

    const [swarmDir] = await readdir(dir)
    const repos = (await readdir(join(dir, swarmDir!))).filter(name => name.startsWith('node-')).map(name => join(dir, swarmDir!, name))
    assert.equal(repos.length, 9)
    const secrets = (await Promise.all(repos.map(async repo => repoSecrets(repo, PASSPHRASE)))).flat()
    // the agency's CA key, 5 escrow keys (3 private parts each), 2 devices' two keys, 1 content key
    assert.equal(secrets.length, 3 + 5 * 3 + 2 * 2 * 3 + 1, secrets.map(s => s.name).join(', '))
    const files = (await Promise.all(repos.map(filesUnder))).flat()
    assert.ok(files.some(f => f.endsWith('ledger.db')) && files.some(f => f.includes('/licence/')), 'the scan covers ledgers and licences')
    assert.deepEqual(await scan(repos, secrets), [])
  })
})
