// Offers are device-bound unless the seller asks for an open one: over real node
// processes driven through the CLI, everything all n escrows hold (their private keys,
// every file of their repos, their ledgers, the offer) does not yield a device-bound
// work's key; the same attempt yields an open offer's key from t escrows.
import assert from 'node:assert/strict'
import { createHash, createPrivateKey, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { combineShares, os2ip, unwrapShare, verifyKeyCommitment } from '../../device/crypto/index.ts'
import { decodeObject } from '../../device/objects/codec.ts'
import { parseManifest, parseSignedOffer } from '../../device/objects/market.ts'
import { EscrowKey } from '../../node/escrow/unblind.ts'
import { ESCROW_KEY, NodeKeyStore } from '../../node/keys/keystore.ts'
import { Swarm } from '../../scripts/swarm.ts'
import { runCli } from '../helpers/cli.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

const PASSPHRASE = 'device-bound passphrase'

const cli = swarmCli(PASSPHRASE)

/** Every file under a directory, recursively */
async function filesOf (dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
}

/** What an escrow holds: its private key, every file of its repo, every value in its ledger */
interface EscrowHoldings {
  key: EscrowKey
  peer: string
  blobs: Uint8Array[]
}

async function holdingsOf (node: SwarmNode): Promise<EscrowHoldings> {
  const blobs: Uint8Array[] = []
  for (const file of await filesOf(node.repo)) blobs.push(new Uint8Array(await readFile(file)))
  // the ledger's rows as values too (a WAL file may hold what the main file does not yet)
  const db = new DatabaseSync(join(node.repo, 'escrow', 'ledger.db'), { readOnly: true })
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>
    for (const { name } of tables) {
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
        for (const value of Object.values(row)) {
          if (value instanceof Uint8Array) blobs.push(value)
          else if (typeof value === 'string') blobs.push(Buffer.from(value))
        }
      }
    }
  } finally {
    db.close()
  }
  // the escrow's private key, unsealed with its repo's passphrase
  const unlocked = await new NodeKeyStore(join(node.repo, 'keys')).unlock(PASSPHRASE)
  const key = new EscrowKey((await unlocked.getPrivateKey(ESCROW_KEY))!)
  unlocked.lock()
  return { key, peer: node.peerId, blobs }
}

/**
 * Everything escrows can do towards K: unwrap each share of the offer that their keys
 * open (x = c^d_T), combine any t of them, and try every 32-byte window of everything
 * they hold as K. Returns K when something matches the offer's key commitment.
 */
function recoverKey (offer: Signed<Offer>, contentSalt: Uint8Array, holders: EscrowHoldings[]): Uint8Array | undefined {
  const { terms } = offer.body
  const shares: Uint8Array[] = []
  for (const wrapped of offer.body.shares) {
    const escrow = terms.escrows[wrapped.j - 1]!
    const holder = holders.find(h => h.peer === escrow.peer)
    if (holder == null) continue
    const x = holder.key.unblind(wrapped.c, terms)
    shares.push(unwrapShare({ x: os2ip(x), n: holder.key.n, j: wrapped.j, dem: wrapped.dem, contentSalt, offerSalt: offer.body.salt }))
  }
  if (shares.length >= terms.t) {
    const key = combineShares(shares.slice(0, terms.t), terms.t)
    if (verifyKeyCommitment(key, offer.body.kc)) return key
  }
  for (const blob of holders.flatMap(h => h.blobs)) {
    for (let i = 0; i + 32 <= blob.length; i++) {
      const candidate = blob.subarray(i, i + 32)
      if (verifyKeyCommitment(candidate, offer.body.kc)) return candidate
    }
  }
  return undefined
}

describe('device-bound offers by default, open ones on request', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-bound-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        ...[1, 2, 3].map(() => ({ roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] })),
        { roles: ['seller'] },
        { roles: ['buyer'] }
      ]
    })
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('publishes device-bound unless --open; no escrows together learn a device-bound key, t of them learn an open one', async function () {
    const [agency, e1, e2, e3, seller, buyer] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
    const escrows = [e1, e2, e3]
    const agencyAddr = agency.addresses[0]!
    for (const e of escrows) {
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
      await cli(e, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
    }
    await cli(seller, 'trust', '--agency', agencyAddr)
    await cli(buyer, 'device', 'init', '--bits', '2048')
    const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
    await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)
    for (const e of escrows) await cli(e, 'escrow', 'deposit', buyer.peerId, '1000')
    // in major units too: 10.00 EUR is 1000 cents
    assert.deepEqual(await cli(e1, 'escrow', 'deposit', buyer.peerId, '10.00 EUR'), { account: buyer.peerId, balance: 2000, currency: 'EUR' })
    const named = escrows.flatMap(e => ['--escrow', e.addresses[0]!])

    const boundFile = join(dir, 'bound.bin')
    await writeFile(boundFile, randomBytes(2 * 1024 * 1024 + 3))
    const openFile = join(dir, 'open.bin')
    await writeFile(openFile, randomBytes(1024 * 1024 + 5))

    // an open offer with t = 1 would hand K to its one escrow: refused, nothing published
    await assert.rejects(cli(seller, 'publish', openFile, '--title', 'Lonely', '--price', '10', '--escrows', '1-of-3', '--open', ...named), { code: 'ERR_OPEN_NEEDS_THRESHOLD' })
    assert.deepEqual((await cli(seller, 'contents')).contents, [])

    const bound = await cli(seller, 'publish', boundFile, '--title', 'Bound Work', '--tags', 'sealed', '--price', '0.10', '--escrows', '2-of-3', ...named)
    assert.equal(bound.open, false)
    assert.equal(bound.price, 10)
    const open = await cli(seller, 'publish', openFile, '--title', 'Open Work', '--tags', 'free', '--price', '10', '--escrows', '2-of-3', '--open', ...named)
    assert.equal(open.open, true)

    const listing = (await cli(buyer, 'search', 'sealed')).offers.find((o: any) => o.offer === bound.offer)
    assert.equal(listing?.open, false, 'search shows the offer device-bound')
    assert.equal((await cli(buyer, 'search', 'free')).offers.find((o: any) => o.offer === open.offer)?.open, true, 'and the other open')

    const out = join(dir, 'bound.out')
    const bought = await cli(buyer, 'buy', bound.offer, '--out', out)
    assert.equal(bought.bound, true)
    // what it cost: the price at each of the t escrows that accepted
    assert.deepEqual([bought.price, bought.currency, bought.paid], [10, 'EUR', 20])
    assert.equal(bought.escrows.filter((e: any) => e.outcome === 'accepted').length, 2)
    assert.equal(createHash('sha256').update(await readFile(out)).digest('hex'), createHash('sha256').update(await readFile(boundFile)).digest('hex'))
    const confirmed = await cli(buyer, 'confirm', bought.purchase)
    assert.deepEqual([confirmed.price, confirmed.currency, confirmed.escrows.length], [10, 'EUR', 2])
    const accounts = await runCli(['--repo', e1.repo, 'escrow', 'accounts'], { KEYFAIR_PASSPHRASE: PASSPHRASE })
    assert.match(accounts.stdout, new RegExp(`^${buyer.peerId}  €(19\\.90|20\\.00)$`, 'm'), accounts.stdout)

    const offerOf = async (offerId: string, content: string): Promise<{ offer: Signed<Offer>, salt: Uint8Array }> => {
      const offer = parseSignedOffer(decodeObject(await readFile(join(seller.repo, 'content', content, 'offers', offerId))))
      const manifest = parseManifest(decodeObject(await readFile(join(seller.repo, 'content', content, 'manifest.cbor'))))
      return { offer, salt: manifest.salt }
    }
    const holders = await Promise.all(escrows.map(holdingsOf))
    assert.ok(holders.every(h => h.blobs.length > 0))
    const b = await offerOf(bound.offer, bound.content)
    assert.equal(b.offer.body.shares.length, 0, 'a device-bound offer carries no shares of K')
    assert.equal(recoverKey(b.offer, b.salt, holders), undefined, 'all escrows together do not learn a device-bound key')

    // the same attempt on the open offer, with only t = 2 of its escrows, finds its key
    const o = await offerOf(open.offer, open.content)
    const key = recoverKey(o.offer, o.salt, holders.slice(0, 2))
    assert.ok(key != null && verifyKeyCommitment(key, o.offer.body.kc), 'two escrows of an open offer learn its key')
  })
})
