import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Swarm, bootstrapDistance } from '../../scripts/swarm.ts'
import { TEST_ENV, isAlive, runCli } from '../helpers/cli.ts'
import { waitFor } from '../helpers/nodes.ts'

const SWARM_SCRIPT = fileURLToPath(new URL('../../scripts/swarm.ts', import.meta.url))
const SIZE = 20

describe(`a ${SIZE}-process swarm on loopback`, function () {
  this.timeout(180_000)
  let swarm: Swarm | undefined

  after(async function () {
    await swarm?.stop()
  })

  it('starts, announces on one node and finds the keywords from the farthest node, then stops every process', async function () {
    const started = Date.now()
    swarm = await Swarm.start({ nodes: Array.from({ length: SIZE }, (_, i) => ({ roles: i === 0 ? ['escrow'] : ['buyer', 'seller'] })), topology: 'tree', env: TEST_ENV })
    const startMs = Date.now() - started
    assert.equal(swarm.nodes.length, SIZE)
    assert.equal(new Set(swarm.nodes.map(n => n.peerId)).size, SIZE, 'distinct peer ids')

    // announce on the last leaf; search from the node farthest from it in the bootstrap tree
    const announcer = swarm.nodes[SIZE - 1]!
    const seeker = [...swarm.nodes].sort((a, b) => bootstrapDistance(b.index, announcer.index, 'tree') - bootstrapDistance(a.index, announcer.index, 'tree'))[0]!
    const hops = bootstrapDistance(seeker.index, announcer.index, 'tree')
    assert.ok(hops >= 6, `seeker is ${hops} hops away in the bootstrap graph`)

    const contentId = 'bafkreia72fyadnv6uypovhb63cxbhsnalxplztghyhsjwjlhzglmrf5pom'
    const announced = await runCli(['--repo', announcer.repo, '--json', 'announce', contentId, 'Kind of Blue', 'jazz,trumpet'])
    assert.equal(announced.code, 0, announced.stderr)
    const result = JSON.parse(announced.stdout)
    assert.deepEqual(result.keywords, ['kind', 'of', 'blue', 'jazz', 'trumpet'])
    assert.ok(result.provided.every((p: any) => p.ok), JSON.stringify(result.provided))

    const lookups: number[] = []
    for (const word of ['JAZZ', 'trumpet', 'Blue']) {
      const t0 = Date.now()
      const found = await seeker.client.call('find', { keyword: word, timeoutMs: 20_000, limit: 5 }, { timeoutMs: 30_000 })
      lookups.push(Date.now() - t0)
      assert.deepEqual(found.providers.map(p => p.peerId), [announcer.peerId], `providers of ${word}`)
      assert.ok(found.providers[0]!.multiaddrs.length > 0, 'provider addresses are returned')
    }
    // a word nobody announced: bounded, empty, no error
    const t0 = Date.now()
    const none = await seeker.client.call('find', { keyword: 'polka', timeoutMs: 1500 })
    assert.deepEqual(none.providers, [])
    assert.ok(Date.now() - t0 < 5000, 'an unknown keyword ends within its time budget')

    // status and memory of an idle node, for the record
    const rss = await Promise.all(swarm.nodes.map(async n => rssOf(n.pid)))
    console.log(`      swarm of ${SIZE} processes ready in ${startMs} ms; keyword lookups ${lookups.join(', ')} ms over ${hops} bootstrap hops; idle RSS median ${median(rss)} MiB`)

    const pids = swarm.pids
    await swarm.stop()
    assert.deepEqual(pids.filter(isAlive), [], 'no node process is left')
  })
})

describe('the swarm script as a process', function () {
  this.timeout(120_000)

  async function startScript (nodes: number): Promise<{ pid: number, nodePids: number[], kill: (signal: NodeJS.Signals) => void, exited: Promise<number | null> }> {
    const child = spawn(process.execPath, [SWARM_SCRIPT, '--nodes', String(nodes), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    const ready = await new Promise<any>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', line => { try { resolve(JSON.parse(line)) } catch {} })
      child.once('exit', code => { reject(new Error(`swarm script exited ${code}`)) })
    })
    return { pid: child.pid!, nodePids: ready.nodes.map((n: any) => n.pid), kill: s => child.kill(s), exited }
  }

  it('Ctrl-C (SIGINT) stops every node it started', async function () {
    const script = await startScript(3)
    assert.equal(script.nodePids.length, 3)
    assert.ok(script.nodePids.every(isAlive))
    script.kill('SIGINT')
    assert.equal(await script.exited, 0)
    assert.deepEqual(script.nodePids.filter(isAlive), [])
  })

  it('a SIGKILLed swarm script leaves no orphan: nodes notice their parent is gone', async function () {
    const script = await startScript(3)
    script.kill('SIGKILL')
    await script.exited
    await waitFor(() => script.nodePids.every(pid => !isAlive(pid)), 15_000, 'orphaned nodes to stop')
  })
})

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

async function rssOf (pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return Math.round(kb / 1024)
}
