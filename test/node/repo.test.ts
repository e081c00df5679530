import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo, resolveRepoPath } from '../../node/repo.ts'

describe('repo and persistent identity', function () {
  let dir: string

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-repo-'))
  })

  afterEach(async function () {
    await rm(dir, { recursive: true, force: true })
  })

  it('init writes the identity and token with mode 0600 and refuses to run twice', async function () {
    const repo = new Repo(join(dir, 'r'))
    await repo.init()
    for (const file of [repo.identityFile, repo.tokenFile]) {
      assert.equal((await stat(file)).mode & 0o777, 0o600, file)
    }
    assert.equal((await stat(repo.path)).mode & 0o777, 0o700)
    await assert.rejects(repo.init(), { code: 'ERR_REPO_EXISTS' })
  })

  it('a restarted node keeps its peer id', async function () {
    const repo = new Repo(join(dir, 'r'))
    const { peerId } = await repo.init()
    const ids: string[] = []
    for (let i = 0; i < 2; i++) {
      const node = new KeyfairNode({ repo, roles: ['buyer'], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [] })
      await node.start()
      ids.push(node.status().peerId)
      await node.stop()
    }
    assert.deepEqual(ids, [peerId, peerId])
  })

  it('refuses an identity file others can read', async function () {
    const repo = new Repo(join(dir, 'r'))
    await repo.init()
    await chmod(repo.identityFile, 0o644)
    await assert.rejects(repo.loadIdentity(), { code: 'ERR_INSECURE_FILE' })
  })

  it('one node per repo; a stale lock from a crashed node is taken over', async function () {
    const repo = new Repo(join(dir, 'r'))
    await repo.init()
    const release = await repo.lock()
    // another live process holding the lock: our parent process stands in for it
    await writeFile(repo.lockFile, `${process.ppid}\n`)
    await assert.rejects(repo.lock(), { code: 'ERR_REPO_LOCKED' })
    // a pid that cannot be alive
    await writeFile(repo.lockFile, '2147483646\n')
    const again = await repo.lock()
    assert.equal((await readFile(repo.lockFile, 'utf8')).trim(), String(process.pid))
    await again()
    await release()
  })

  it('an uninitialised repo gives a clear error', async function () {
    const repo = new Repo(join(dir, 'missing'))
    await assert.rejects(repo.loadIdentity(), { code: 'ERR_REPO_NOT_INITIALISED' })
  })

  it('--repo beats $KEYFAIR_REPO beats ~/.keyfair', function () {
    assert.equal(resolveRepoPath('/a', { KEYFAIR_REPO: '/b' }), '/a')
    assert.equal(resolveRepoPath(undefined, { KEYFAIR_REPO: '/b' }), '/b')
    assert.match(resolveRepoPath(undefined, {}), /\.keyfair$/)
  })

  it('a hand-broken config fails with a clear error naming the file', async function () {
    const repo = new Repo(join(dir, 'r'))
    await repo.init()
    await writeFile(repo.configFile, '{"v":1,"listen":["/ip4/1.2.3.4/udp/1"]}')
    await assert.rejects(repo.readConfig(), (err: any) => err.code === 'ERR_BAD_MULTIADDR' && err.message.includes('/ip4/1.2.3.4/udp/1'))
    await writeFile(repo.configFile, '{not json')
    await assert.rejects(repo.readConfig(), (err: any) => err.code === 'ERR_BAD_CONFIG' && err.message.includes(repo.configFile))
  })
})
