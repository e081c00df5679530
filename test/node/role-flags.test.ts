// `keyfair start` gives itself the V8 flags of its roles (node/config.ts roleNodeFlags)
// by re-executing itself under the same pid: a buyer a 1 MiB young generation (memory),
// an escrow a 16 MiB one (throughput). Checked on the real process's command line.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { roleNodeFlags } from '../../node/config.ts'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'

/** starts `keyfair start` with no IPC channel (as a user would) and returns its command line once ready */
async function commandLineOf (repo: string, roles: string, nodeFlags: string[] = []): Promise<{ pid: number, argv: string[] }> {
  const child = spawn(process.execPath, [...nodeFlags, KEYFAIR_BIN, '--repo', repo, '--json', 'start', '--init', '--role', roles, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  try {
    const stderr: string[] = []
    createInterface({ input: child.stderr! }).on('line', line => stderr.push(line))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`not ready within 60 s: ${stderr.join(' | ')}`)) }, 60_000)
      createInterface({ input: child.stdout! }).on('line', line => {
        try {
          if (JSON.parse(line).event === 'ready') { clearTimeout(timer); resolve() }
        } catch {}
      })
      child.once('exit', code => { clearTimeout(timer); reject(new Error(`node exited with ${code}: ${stderr.join(' | ')}`)) })
    })
    // the same pid: the node replaced itself instead of starting a child
    const argv = (await readFile(`/proc/${child.pid!}/cmdline`, 'utf8')).split('\0').filter(Boolean)
    return { pid: child.pid!, argv }
  } finally {
    if (child.exitCode == null && child.signalCode == null) child.kill('SIGTERM')
    await exited
  }
}

describe('node flags by role', function () {
  this.timeout(120_000)
  let dir = ''

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'keyfair-flags-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('a buyer keeps a small young generation, a node without the buyer role a larger one', function () {
    assert.deepEqual(roleNodeFlags(['buyer']), ['--max-semi-space-size=1'])
    assert.deepEqual(roleNodeFlags(['seller', 'buyer']), ['--max-semi-space-size=1'])
    assert.deepEqual(roleNodeFlags(['escrow']), ['--max-semi-space-size=16'])
    assert.deepEqual(roleNodeFlags(['seller', 'agency']), ['--max-semi-space-size=16'])
  })

  it('`keyfair start` re-executes itself under the same pid with the flags of its roles, replacing another value', async function () {
    const escrow = await commandLineOf(join(dir, 'escrow'), 'escrow', ['--max-semi-space-size=1'])
    assert.ok(escrow.argv.includes('--max-semi-space-size=16'), escrow.argv.join(' '))
    assert.ok(!escrow.argv.includes('--max-semi-space-size=1'), escrow.argv.join(' '))
    const buyer = await commandLineOf(join(dir, 'buyer'), 'buyer')
    assert.ok(buyer.argv.includes('--max-semi-space-size=1'), buyer.argv.join(' '))
    assert.ok(buyer.argv.includes(KEYFAIR_BIN) && buyer.argv.includes('start'), buyer.argv.join(' '))
  })
})
