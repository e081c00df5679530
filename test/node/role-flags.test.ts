// `keyfair start` gives itself the V8 flags of its roles (node/config.ts roleNodeFlags)
// by re-executing itself under the same pid: a buyer a 1 MiB young generation (memory),
// an escrow a 16 MiB one (throughput). Checked on the real process's command line.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { roleNodeFlags } from '../../node/config.ts'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import { startNodeProcess } from '../helpers/cli.ts'

/** `keyfair start` with no IPC channel (as a user starts it): its command line once ready */
async function commandLineOf (repo: string, roles: string, nodeFlags: string[] = []): Promise<string[]> {
  const node = await startNodeProcess(['--repo', repo, 'start', '--init', '--role', roles, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'], {}, { ipc: false, nodeFlags })
  try {
    // the same pid: the node replaced itself instead of starting a child
    return (await readFile(`/proc/${node.child.pid!}/cmdline`, 'utf8')).split('\0').filter(Boolean)
  } finally {
    await node.stop()
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
    assert.ok(escrow.includes('--max-semi-space-size=16'), escrow.join(' '))
    assert.ok(!escrow.includes('--max-semi-space-size=1'), escrow.join(' '))
    const buyer = await commandLineOf(join(dir, 'buyer'), 'buyer')
    assert.ok(buyer.includes('--max-semi-space-size=1'), buyer.join(' '))
    assert.ok(buyer.includes(KEYFAIR_BIN) && buyer.includes('start'), buyer.join(' '))
  })
})
