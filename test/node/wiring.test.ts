import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CrlFeed } from '../../node/agency/crl-feed.ts'
import { AnnouncementStore, announcementMigrations } from '../../node/discovery/announcements.ts'
import { Discovery } from '../../node/discovery/discovery.ts'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { Market } from '../../node/market/market.ts'
import { Repo } from '../../node/repo.ts'
import { EscrowRole } from '../../node/roles/escrow.ts'
import { openDatabase } from '../../node/store/database.ts'
import type { CrlFeedComponents } from '../../node/agency/crl-feed.ts'
import type { DiscoveryComponents } from '../../node/discovery/discovery.ts'
import type { MarketComponents } from '../../node/market/market.ts'
import type { RoleComponents, RoleNode } from '../../node/roles/index.ts'
import { testKeys } from '../helpers/keys.ts'
import type { UnlockedKeys } from '../../node/keys/keystore.ts'
import type { Libp2p } from '@libp2p/interface'
import type { DatabaseSync } from 'node:sqlite'

const ROOT = join(import.meta.dirname, '..', '..')

/** Where the node builds libp2p and its services: every component there is typed */
const WIRING = ['node/keyfair-node.ts', 'node/libp2p.ts']

/** `any` as a type: an annotation, a cast or a type argument */
const ANY_TYPE = /:\s*any\b|\bas\s+any\b|<any>/

describe('the node\'s libp2p wiring', function () {
  this.timeout(30_000)
  let dir: string
  let db: DatabaseSync
  const nodes: Libp2p[] = []
  let keys: UnlockedKeys

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-wiring-'))
    await new Repo(join(dir, 'r')).init()
    keys = await testKeys(join(dir, 'r'))
    db = openDatabase(join(dir, 'announcements.db'), announcementMigrations)
  })

  after(async function () {
    for (const node of nodes) await node.stop()
    db.close()
    keys.lock()
    await rm(dir, { recursive: true, force: true })
  })

  const roleNode = (): RoleNode => ({
    repo: new Repo(join(dir, 'r')),
    device: () => { throw new Error('no device in this test') },
    keys: () => keys
  })

  it('types every service it builds: no `any` in the node\'s wiring', function () {
    const found = WIRING.flatMap(file => readFileSync(join(ROOT, file), 'utf8').split('\n')
      .map((line, i) => ({ where: `${file}:${i + 1}`, line: line.trim() }))
      .filter(({ line }) => ANY_TYPE.test(line)))
    assert.deepEqual(found, [])
  })

  it('builds keyfair\'s services whatever their order: each reads the others from its components when it uses them', async function () {
    const store = new AnnouncementStore(db)
    const node = await createKeyfairLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      // the reverse of the node's own order: roles first, the CRL feed last
      services: {
        'role:escrow': (components: RoleComponents) => new EscrowRole(components, roleNode()),
        market: (components: MarketComponents) => new Market(components, { repoPath: join(dir, 'r') }),
        discovery: (components: DiscoveryComponents) => new Discovery(components, { store }),
        crl: (components: CrlFeedComponents) => new CrlFeed(components)
      }
    })
    nodes.push(node)
    assert.ok(node.services['role:escrow'] instanceof EscrowRole)
    assert.ok(node.services.crl instanceof CrlFeed)
    await node.start()
    assert.equal(node.status, 'started')
    // the feed reaches pubsub, a base service libp2p built before it, through its components
    assert.deepEqual(node.services.crl.subscribers('-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----'), [])
  })

  it('refuses a service whose dependency is missing, naming the capability', async function () {
    await assert.rejects(createKeyfairLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [],
      bootstrap: [],
      // @ts-expect-error the market needs the CRL feed, left out here
      services: { market: (components: MarketComponents) => new Market(components, { repoPath: join(dir, 'r') }) }
    }), { name: 'UnmetServiceDependenciesError', message: /keyfair:crl-feed/ })
  })
})
