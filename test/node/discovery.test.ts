import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { escrowServiceCid } from '../../node/discovery/keywords.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { freePort, waitFor } from '../helpers/nodes.ts'
import { FAST_KDF, TEST_PASSPHRASE } from '../helpers/keys.ts'
import type { RoleName } from '../../node/config.ts'

async function initRepo (path: string): Promise<Repo> {
  const repo = new Repo(path)
  await repo.init()
  return repo
}

const CONTENT = 'bafkreia72fyadnv6uypovhb63cxbhsnalxplztghyhsjwjlhzglmrf5pom'

describe('DHT discovery between keyfair nodes', function () {
  this.timeout(90_000)
  let dir: string
  const running: KeyfairNode[] = []

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-disc-'))
  })

  afterEach(async function () {
    await Promise.all(running.splice(0).map(async n => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  async function startNode (name: string, roles: RoleName[], bootstrap: KeyfairNode[] = []): Promise<KeyfairNode> {
    const repo = new Repo(join(dir, name))
    if (!(await repo.exists())) await repo.init()
    const node = new KeyfairNode({
      repo,
      roles,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: bootstrap.map(b => b.status().addresses[0]!),
      passphrase: TEST_PASSPHRASE,
      keyStoreKdf: FAST_KDF
    })
    await node.start()
    running.push(node)
    return node
  }

  async function stopNode (node: KeyfairNode): Promise<void> {
    running.splice(running.indexOf(node), 1)
    await node.stop()
  }

  it('a restarted node provides its announcements again from its repo', async function () {
    const hub = await startNode('hub', ['buyer'])
    const seller = await startNode('seller', ['seller'], [hub])
    await waitFor(() => seller.status().routingTableSize > 0, 10_000, 'seller to join')
    const result = await seller.announce(CONTENT, ['ballad'])
    assert.ok(result.provided.every(p => p.ok))
    await stopNode(seller)
    await stopNode(hub)

    // a new hub knows nothing; only the seller's re-provide on restart can tell it
    const freshHub = await startNode('fresh-hub', ['buyer'])
    const restarted = await startNode('seller', ['seller'], [freshHub])
    assert.equal(restarted.status().announcements, 1)
    const buyer = await startNode('buyer', ['buyer'], [freshHub])
    const providers = await buyer.find('ballad', { timeoutMs: 20_000 })
    assert.deepEqual(providers.map(p => p.peerId), [restarted.status().peerId])
  })

  it('an escrow advertises the escrow service CID; find is bounded by its limit', async function () {
    const hub = await startNode('hub', ['buyer'])
    const escrows = await Promise.all(['e1', 'e2', 'e3'].map(async name => startNode(name, ['escrow'], [hub])))
    const seller = await startNode('seller', ['seller'], [hub])
    const expected = new Set(escrows.map(e => e.status().peerId))
    const found = new Set<string>()
    await waitFor(async () => {
      for await (const p of seller.discovery.findProviders(escrowServiceCid(), { timeoutMs: 2000 })) found.add(p.peerId)
      return [...expected].every(id => found.has(id))
    }, 30_000, 'all escrows to be found')
    assert.deepEqual([...found].filter(id => !expected.has(id)), [], 'only escrows provide the escrow service')

    const limited: string[] = []
    for await (const p of seller.discovery.findProviders(escrowServiceCid(), { limit: 2, timeoutMs: 5000 })) limited.push(p.peerId)
    assert.equal(limited.length, 2)
  })

  it('a node started before its bootstrap peer keeps dialling until that peer is up', async function () {
    const hubRepo = new Repo(join(dir, 'late-hub'))
    const { peerId: hubId } = await hubRepo.init()
    const port = await freePort()
    const early = new KeyfairNode({
      repo: await initRepo(join(dir, 'early')),
      roles: ['buyer'],
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [`/ip4/127.0.0.1/tcp/${port}/p2p/${hubId}`]
    })
    await early.start()
    running.push(early)
    await new Promise(resolve => setTimeout(resolve, 1500)) // its first dials fail: nothing listens yet
    assert.equal(early.status().connections, 0)
    const hub = new KeyfairNode({ repo: hubRepo, roles: ['buyer'], listen: [`/ip4/127.0.0.1/tcp/${port}`], bootstrap: [] })
    await hub.start()
    running.push(hub)
    await waitFor(() => early.peers().some(p => p.peerId === hubId), 15_000, 'the early node to join the late hub')
  })

  it('refuses a content id that is not a CID, and writes nothing', async function () {
    const node = await startNode('solo', ['seller'])
    await assert.rejects(node.announce('not-a-cid', ['x']), { code: 'ERR_BAD_REQUEST' })
    assert.equal(node.status().announcements, 0)
  })
})
