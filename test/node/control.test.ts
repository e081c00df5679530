import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm } from '../../scripts/swarm.ts'
import { runCli } from '../helpers/cli.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'
import type { AddressInfo } from 'node:net'

describe('control API and CLI against a running node process', function () {
  let swarm: Swarm
  let node: SwarmNode
  let api: string
  let token: string
  let dir: string

  before(async function () {
    swarm = await Swarm.start({ nodes: [{ roles: ['buyer', 'escrow'] }] })
    node = swarm.nodes[0]!
    api = JSON.parse(await readFile(join(node.repo, 'api'), 'utf8')).url
    token = (await readFile(join(node.repo, 'api.token'), 'utf8')).trim()
    dir = await mkdtemp(join(tmpdir(), 'keyfair-cli-'))
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function post (path: string, headers: Record<string, string>, body = '{}'): Promise<{ status: number, json: any }> {
    const res = await fetch(`${api}${path}`, { method: 'POST', headers, body })
    return { status: res.status, json: await res.json() }
  }

  it('`keyfair status --json` from another process reports the node', async function () {
    const result = await runCli(['--repo', node.repo, 'status', '--json'])
    assert.equal(result.code, 0, result.stderr)
    const status = JSON.parse(result.stdout)
    assert.equal(status.peerId, node.peerId)
    assert.deepEqual(status.roles, ['buyer', 'escrow'])
    assert.equal(status.pid, node.pid)
    assert.equal(status.dhtMode, 'server')
    assert.ok(status.protocols.includes('/keyfair/kad/1.0.0'))
    // the node's own process: its resident memory as the kernel counts it, and V8's
    // collections since it started (starting a node fills a 1 MiB young generation many times)
    const kernelRss = Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${node.pid}/status`, 'utf8'))?.[1]) * 1024
    assert.ok(Math.abs(status.memory.rssBytes - kernelRss) < kernelRss * 0.25, `${status.memory.rssBytes} against ${kernelRss}`)
    assert.ok(status.memory.heapUsedBytes > 0 && status.memory.heapUsedBytes < status.memory.rssBytes)
    assert.ok(status.memory.youngCollections > 0)
    assert.ok(Number.isInteger(status.memory.fullCollections) && Number.isInteger(status.memory.collectionMs))
    const human = await runCli(['--repo', node.repo, 'status'])
    assert.match(human.stdout, /^memory: +\d+\.\d MiB resident, \d+\.\d MiB heap, [\d.]+ [KM]?i?B buffers$/m)
    assert.match(human.stdout, /^collections: +\d+ full, \d+ young \(\d+\.\d s paused\)$/m)
  })

  it('`keyfair id` and `keyfair peers` answer in both output modes', async function () {
    const id = await runCli(['--repo', node.repo, 'id'])
    assert.equal(id.code, 0, id.stderr)
    assert.match(id.stdout, new RegExp(`^${node.peerId}\\n`))
    const peers = await runCli(['--repo', node.repo, '--json', 'peers'])
    assert.equal(peers.code, 0, peers.stderr)
    assert.deepEqual(JSON.parse(peers.stdout), { peers: [] })
  })

  it('closes each connection after its answer, so no call races a kept-alive socket\'s timeout', async function () {
    const res = await fetch(`${api}/api/v1/status`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('connection'), 'close')
    assert.equal(res.headers.get('keep-alive'), null)
    await res.json()
    // and calls keep working one after another, each on a fresh connection
    for (let i = 0; i < 3; i++) assert.equal((await node.client.call('status')).peerId, node.peerId)
  })

  it('refuses a missing token', async function () {
    const { status, json } = await post('/api/v1/status', {})
    assert.equal(status, 401)
    assert.equal(json.error.code, 'ERR_UNAUTHORIZED')
    assert.equal(json.peerId, undefined)
  })

  it('refuses a wrong token, even one of the right length', async function () {
    const wrong = token.replace(/^./, c => c === 'a' ? 'b' : 'a')
    const { status, json } = await post('/api/v1/status', { authorization: `Bearer ${wrong}` })
    assert.equal(status, 401)
    assert.equal(json.error.code, 'ERR_UNAUTHORIZED')
  })

  it('refuses a request addressed to another host name (DNS rebinding)', async function () {
    const port = new URL(api).port
    const res = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request({ host: '127.0.0.1', port, path: '/api/v1/status', method: 'POST', headers: { host: `evil.example:${port}`, authorization: `Bearer ${token}` } }, r => { resolve(r.statusCode ?? 0); r.resume() })
        req.on('error', reject)
        req.end('{}')
      }, reject)
    })
    assert.equal(res, 401)
  })

  it('answers the right token and rejects bad bodies with a typed error', async function () {
    const auth = { authorization: `Bearer ${token}` }
    assert.equal((await post('/api/v1/status', auth)).json.peerId, node.peerId)
    const bad = await post('/api/v1/find', auth, '{"keyword": 5}')
    assert.equal(bad.status, 400)
    assert.equal(bad.json.error.code, 'ERR_BAD_REQUEST')
    const notJson = await post('/api/v1/find', auth, 'nope')
    assert.equal(notJson.json.error.code, 'ERR_BAD_REQUEST')
    assert.equal((await post('/api/v1/nothing', auth)).status, 404)
  })

  it('the CLI names a wrong token file in one line', async function () {
    const copy = join(dir, 'copy')
    // a repo copy with the node's api file but another token
    assert.equal((await runCli(['--repo', copy, 'init'])).code, 0)
    await writeFile(join(copy, 'api'), await readFile(join(node.repo, 'api')))
    const result = await runCli(['--repo', copy, 'status'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^keyfair: wrong control API token \(token file: .*api\.token\)\n$/)
  })

  it('the CLI says when no node is running, also for a stale api file', async function () {
    const idle = join(dir, 'idle')
    assert.equal((await runCli(['--repo', idle, 'init'])).code, 0)
    let result = await runCli(['--repo', idle, 'status'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^keyfair: no keyfair node is running for .*idle/)
    // a node killed with SIGKILL leaves its api file behind
    const closed = createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise(resolve => closed.close(resolve))
    for (const pid of [2147483646, process.pid]) { // a dead pid; a live pid (reused) whose port is closed
      await writeFile(join(idle, 'api'), JSON.stringify({ url: `http://127.0.0.1:${port}`, pid }))
      result = await runCli(['--repo', idle, '--json', 'status'])
      assert.equal(result.code, 1)
      assert.equal(JSON.parse(result.stderr).error.code, 'ERR_NODE_NOT_RUNNING', result.stderr)
    }
  })

  it('start refuses a bad multiaddr, an unknown role and a busy port, each in one line', async function () {
    const repo = join(dir, 'starter')
    assert.equal((await runCli(['--repo', repo, 'init'])).code, 0)

    let result = await runCli(['--repo', repo, 'start', '--listen', '/ip4/127.0.0.1/tcp/notaport'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^keyfair: bad multiaddr '\/ip4\/127\.0\.0\.1\/tcp\/notaport': .*\n$/)

    result = await runCli(['--repo', repo, 'start', '--bootstrap', '/ip4/127.0.0.1/tcp/4001'])
    assert.match(result.stderr, /^keyfair: bad multiaddr .*must end in \/p2p\/<peer id>\n$/)

    result = await runCli(['--repo', repo, '--json', 'start', '--role', 'buyer,minter'])
    assert.equal(result.code, 1)
    assert.deepEqual(JSON.parse(result.stderr).error, { code: 'ERR_UNKNOWN_ROLE', message: "unknown role 'minter' (expected one of: buyer, seller, escrow, agency)" })

    const busy = createServer()
    await new Promise<void>(resolve => busy.listen(0, '127.0.0.1', resolve))
    const port = (busy.address() as AddressInfo).port
    try {
      result = await runCli(['--repo', repo, 'start', '--listen', `/ip4/127.0.0.1/tcp/${port}`])
      assert.equal(result.code, 1)
      assert.equal(result.stderr, `keyfair: cannot listen on /ip4/127.0.0.1/tcp/${port}: the port is already in use\n`)
    } finally {
      busy.close()
    }
    // none of these left a lock or an api file behind
    result = await runCli(['--repo', repo, 'status'])
    assert.match(result.stderr, /no keyfair node is running/)
  })

  it('a second node on the same repo is refused', async function () {
    const result = await runCli(['--repo', node.repo, 'start'])
    assert.equal(result.code, 1)
    assert.equal(result.stderr, `keyfair: another keyfair node (pid ${node.pid}) is running on ${node.repo}\n`)
  })
})
