// `keyfair start` gives itself the V8 flags of its roles (node/config.ts roleNodeFlags)
// by re-executing itself under the same pid: a buyer a 1 MiB young generation (memory),
// an escrow a 16 MiB one (throughput), a seller that is not also an escrow or an agency the
// small one and no memory reducer (a heap that stays grown between the works it serves); a
// buyer also glibc malloc settings in its
// environment (roleProcessEnv) unless the user set them. Checked on the real process's
// command line and environment.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { roleNodeFlags, roleProcessEnv } from '../../node/config.ts'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import { startNodeProcess } from '../helpers/cli.ts'

interface Started { commandLine: string[], env: Map<string, string> }

const nulSeparated = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).split('\0').filter(Boolean)

/** `keyfair start` with no IPC channel (as a user starts it): its command line and environment once ready */
async function startedAs (repo: string, roles: string, nodeFlags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const node = await startNodeProcess(['--repo', repo, 'start', '--init', '--role', roles, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'], env, { ipc: false, nodeFlags })
  try {
    // the same pid: the node replaced itself instead of starting a child
    const pid = node.child.pid!
    const environ = await nulSeparated(`/proc/${pid}/environ`)
    return {
      commandLine: await nulSeparated(`/proc/${pid}/cmdline`),
      env: new Map(environ.map(entry => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]))
    }
  } finally {
    await node.stop()
  }
}

describe('node flags by role', function () {
  this.timeout(120_000)
  let dir = ''

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'keyfair-flags-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('a buyer or a seller keeps a small young generation, an escrow or an agency (a seller among them too) a larger one; a seller alone keeps its heap when idle', function () {
    assert.deepEqual(roleNodeFlags(['buyer']), ['--max-semi-space-size=1'])
    assert.deepEqual(roleNodeFlags(['seller']), ['--max-semi-space-size=1', '--no-memory-reducer'])
    assert.deepEqual(roleNodeFlags(['seller', 'buyer']), ['--max-semi-space-size=1', '--no-memory-reducer'])
    // a seller that also serves requests keeps what an escrow or an agency needs
    assert.deepEqual(roleNodeFlags(['seller', 'agency']), ['--max-semi-space-size=16'])
    assert.deepEqual(roleNodeFlags(['escrow', 'seller']), ['--max-semi-space-size=16'])
    assert.deepEqual(roleNodeFlags(['escrow', 'buyer']), ['--max-semi-space-size=1'])
    assert.deepEqual(roleNodeFlags(['escrow']), ['--max-semi-space-size=16'])
    assert.deepEqual(roleNodeFlags(['agency']), ['--max-semi-space-size=16'])
    assert.deepEqual(roleNodeFlags(['escrow', 'agency']), ['--max-semi-space-size=16'])
  })

  it('a buyer\'s environment gets glibc malloc settings, a user\'s own values win, other roles keep theirs', function () {
    const base = { PATH: '/bin' }
    assert.deepEqual(roleProcessEnv(['seller', 'buyer'], base), { PATH: '/bin', MALLOC_ARENA_MAX: '2' })
    assert.deepEqual(roleProcessEnv(['buyer'], { MALLOC_ARENA_MAX: '8' }), { MALLOC_ARENA_MAX: '8' })
    assert.deepEqual(roleProcessEnv(['buyer'], { MALLOC_ARENA_MAX: '' }), { MALLOC_ARENA_MAX: '' })
    const tuned = { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4' }
    assert.deepEqual(roleProcessEnv(['buyer'], tuned), tuned)
    assert.equal(roleProcessEnv(['escrow'], base), base)
    assert.deepEqual(base, { PATH: '/bin' }, 'the given environment is not changed')
  })

  it('`keyfair start` re-executes itself under the same pid with the flags and environment of its roles, replacing another flag value', async function () {
    const escrow = await startedAs(join(dir, 'escrow'), 'escrow', ['--max-semi-space-size=1'])
    assert.ok(escrow.commandLine.includes('--max-semi-space-size=16'), escrow.commandLine.join(' '))
    assert.ok(!escrow.commandLine.includes('--max-semi-space-size=1'), escrow.commandLine.join(' '))
    assert.ok(!escrow.env.has('MALLOC_ARENA_MAX'))
    const buyer = await startedAs(join(dir, 'buyer'), 'buyer')
    assert.ok(buyer.commandLine.includes('--max-semi-space-size=1'), buyer.commandLine.join(' '))
    assert.ok(buyer.commandLine.includes(KEYFAIR_BIN) && buyer.commandLine.includes('start'), buyer.commandLine.join(' '))
    assert.equal(buyer.env.get('MALLOC_ARENA_MAX'), '2')
    assert.ok(!buyer.commandLine.includes('--no-memory-reducer'), buyer.commandLine.join(' '))
    const seller = await startedAs(join(dir, 'seller'), 'seller')
    assert.ok(seller.commandLine.includes('--max-semi-space-size=1') && seller.commandLine.includes('--no-memory-reducer'), seller.commandLine.join(' '))
  })

  it('`keyfair start` also takes the flags of KEYFAIR_NODE_FLAGS, after those of its roles', async function () {
    const buyer = await startedAs(join(dir, 'extra'), 'buyer', [], { KEYFAIR_NODE_FLAGS: '--no-memory-reducer  --stack-size=2000' })
    const args = buyer.commandLine
    assert.ok(args.includes('--no-memory-reducer') && args.includes('--stack-size=2000'), args.join(' '))
    assert.ok(args.indexOf('--max-semi-space-size=1') < args.indexOf('--no-memory-reducer'), args.join(' '))
    assert.ok(args.indexOf('--no-memory-reducer') < args.indexOf(KEYFAIR_BIN), args.join(' '))
  })

  it('a buyer started with its own malloc setting keeps it', async function () {
    const buyer = await startedAs(join(dir, 'own'), 'buyer', [], { MALLOC_ARENA_MAX: '4' })
    assert.equal(buyer.env.get('MALLOC_ARENA_MAX'), '4')
  })
})
