// A whole purchase over real libp2p between in-process nodes (the device is its real
// child process): publish 3-of-5, search, buy, play, confirm, and the money moved.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { open, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { initAgency } from '../../node/agency/agency.ts'
import { EscrowFiles } from '../../node/escrow/state.ts'
import { chunkOffset } from '../../node/content/store.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { AgencyRole } from '../../node/roles/agency.ts'
import { BuyerRole } from '../../node/roles/buyer.ts'
import { EscrowRole } from '../../node/roles/escrow.ts'
import { SellerRole } from '../../node/roles/seller.ts'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { exportContent, importContent } from '../../node/market/media.ts'
import { tmpdir } from 'node:os'
import { waitFor } from '../helpers/nodes.ts'
import { FAST_KDF, TEST_PASSPHRASE, testKeys } from '../helpers/keys.ts'
import type { RoleName } from '../../node/config.ts'

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')

describe('a marketplace purchase between in-process nodes', function () {
  this.timeout(180_000)
  let dir: string
  const nodes: KeyfairNode[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-market-'))
  })

  after(async function () {
    await Promise.all(nodes.splice(0).reverse().map(async n => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  async function start (name: string, roles: RoleName[], bootstrap: string[] = [], prepare?: (repo: Repo) => Promise<void>): Promise<KeyfairNode> {
    const repo = new Repo(join(dir, name))
    await repo.init()
    await prepare?.(repo)
    const node = new KeyfairNode({ repo, roles, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
    await node.start()
    nodes.push(node)
    return node
  }

  it('publishes 3-of-5, finds it, buys it, plays it, confirms it', async function () {
    const agency = await start('agency', ['agency'], [], async repo => { await initAgency(repo.path, { keys: await testKeys(repo.path), bits: 2048 }) })
    const agencyAddr = agency.status().addresses[0]!
    const agencyRole = agency.roles.find(r => r instanceof AgencyRole) as AgencyRole
    const escrows: EscrowRole[] = []
    for (let i = 0; i < 5; i++) {
      const node = await start(`escrow${i}`, ['escrow'], [agencyAddr], async repo => { await new EscrowFiles(repo.path).init({ keys: await testKeys(repo.path), bits: 2048 }) })
      const role = node.roles.find(r => r instanceof EscrowRole) as EscrowRole
      await role.enroll(agencyAddr, agencyRole.agency.createEnrollmentCode({ kind: 'escrow', ttlMs: 60_000 }).code)
      escrows.push(role)
    }
    const sellerNode = await start('seller', ['seller'], [agencyAddr])
    await sellerNode.market.trust.set(agencyAddr)
    const buyerNode = await start('buyer', ['buyer'], [agencyAddr])
    await waitFor(() => nodes.every(n => n.status().routingTableSize >= 3), 30_000, 'routing tables')
    /** a buyer's device made, certified by the agency, and 1000 at every escrow */
    const enrollBuyer = async (node: KeyfairNode): Promise<void> => {
      await node.device.initialise({ passphrase: 'a long passphrase', bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })
      const csrs = await node.device.certificateRequests()
      const enrolled = agencyRole.agency.enroll({ code: agencyRole.agency.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 }).code, csrs: { signing: csrs.signing, encryption: csrs.encryption }, remotePeer: node.status().peerId })
      await node.device.installCertificates({ signing: enrolled.certificates.signing!, encryption: enrolled.certificates.encryption!, root: enrolled.root })
      await node.market.trust.set(agencyAddr, enrolled.root)
      for (const e of escrows) (await e.ledger.deposit(node.status().peerId, 1000))
    }
    await enrollBuyer(buyerNode)
    const buyerId = buyerNode.status().peerId

    const plain = join(dir, 'song.bin')
    await writeFile(plain, randomBytes(3 * 1024 * 1024 + 123))
    const seller = (sellerNode.roles.find(r => r instanceof SellerRole) as SellerRole).seller
    // open: the second buyer below buys with the seller offline
    const published = await seller.publish(plain, { title: 'Blue Train', tags: ['jazz'], price: 250, t: 3, n: 5, escrows: [], open: true })
    assert.equal(published.escrows.length, 5)
    assert.equal(published.open, true)

    const buyer = (buyerNode.roles.find(r => r instanceof BuyerRole) as BuyerRole).buyer
    const found = await buyer.search(['jazz'])
    assert.equal(found.length, 1)
    assert.equal(found[0]!.offer, published.offer)
    assert.equal(found[0]!.open, true)
    const out = join(dir, 'out.bin')
    const events: any[] = []
    const bought = await buyer.buy(published.offer, { output: out, onProgress: e => events.push(e) })
    assert.equal(await sha(out), await sha(plain))
    assert.equal(bought.bound, true, 'the seller was online: a device-bound licence')
    assert.equal(bought.escrows.filter(e => e.outcome === 'accepted').length, 3, JSON.stringify(bought))
    assert.ok(events.some(e => e.phase === 'download'))
    const confirmed = await buyer.confirm(bought.purchase)
    assert.equal(confirmed.escrows.length, 3)
    assert.ok(confirmed.escrows.every(e => e.state === 'released'), JSON.stringify(confirmed))
    const sellerId = sellerNode.status().peerId
    const paid = (await Promise.all(escrows.map(async e => e.ledger.balance(sellerId)))).reduce((a, b) => a + b, 0)
    const spent = (await Promise.all(escrows.map(async e => 1000 - (await e.ledger.balance(buyerId))))).reduce((a, b) => a + b, 0)
    assert.equal(paid, 750)
    assert.equal(spent, 750)
    for (const e of escrows) assert.deepEqual((await e.ledger.audit()).violations, [])

    // superdistribution: the first buyer seeds; with the seller stopped a second buyer gets everything from it
    await buyer.seed(await buyerNode.market.knownOffer(published.offer))
    const second = await start('buyer2', ['buyer'], [agencyAddr])
    await enrollBuyer(second)
    await sellerNode.stop()
    nodes.splice(nodes.indexOf(sellerNode), 1)
    const buyer2 = (second.roles.find(r => r instanceof BuyerRole) as BuyerRole).buyer
    const found2 = await buyer2.search(['jazz'])
    assert.deepEqual(found2.map(o => o.offer), [published.offer])
    const out2 = join(dir, 'out2.bin')
    const events2: any[] = []
    const bought2 = await buyer2.buy(published.offer, { output: out2, onProgress: e => events2.push(e) })
    assert.equal(await sha(out2), await sha(plain))
    assert.equal(bought2.bound, false, 'the seller is offline: the open offer')
    const providers = new Set(events2.filter(e => e.phase === 'download').map(e => e.provider))
    assert.deepEqual([...providers], [buyerNode.status().peerId], JSON.stringify(events2.filter(e => e.phase !== 'download')))
    await buyer2.confirm(bought2.purchase)
    assert.equal((await Promise.all(escrows.map(async e => e.ledger.balance(sellerId)))).reduce((a, b) => a + b, 0), 1500, 'the payment still reaches the seller')

    // portable media: exported by the first buyer, checked on import, bought without any download
    const media = join(dir, 'media')
    const exported = await exportContent(buyerNode.market, published.content, media)
    assert.equal(exported.offers, 1)
    const third = await start('buyer3', ['buyer'], [agencyAddr])
    const bad = join(dir, 'media-bad')
    await cp(media, bad, { recursive: true })
    const data = await readFile(join(bad, 'data.kf'))
    data[5] = data[5]! ^ 1
    await writeFile(join(bad, 'data.kf'), data)
    await assert.rejects(importContent(third.market, bad), { code: 'ERR_BAD_CHUNK' })
    const imported = await importContent(third.market, media)
    assert.deepEqual([imported.content, imported.offers], [published.content, [published.offer]])
    assert.equal(await third.market.content.isComplete(published.content), true)
    assert.equal((await third.market.knownOffer(published.offer)).body.title, 'Blue Train')
    await enrollBuyer(third)
    for (const seeder of [buyerNode, second]) {
      await seeder.stop()
      nodes.splice(nodes.indexOf(seeder), 1)
    }
    const out3 = join(dir, 'out3.bin')
    const events3: any[] = []
    const bought3 = await (third.roles.find(r => r instanceof BuyerRole) as BuyerRole).buyer.buy(published.offer, { output: out3, onProgress: e => events3.push(e) })
    assert.equal(await sha(out3), await sha(plain))
    assert.equal(bought3.resumedFrom, 4, 'nothing downloaded: every chunk came from the media')
    assert.equal(events3.filter(e => e.phase === 'download').length, 0)
  })

  it('pays once a chunk verifies, plays behind the download, and a download that fails after payment resumes unpaid', async function () {
    const agency = await start('agency-p', ['agency'], [], async repo => { await initAgency(repo.path, { keys: await testKeys(repo.path), bits: 2048 }) })
    const agencyAddr = agency.status().addresses[0]!
    const agencyRole = agency.roles.find(r => r instanceof AgencyRole) as AgencyRole
    const escrowNode = await start('escrow-p', ['escrow'], [agencyAddr], async repo => { await new EscrowFiles(repo.path).init({ keys: await testKeys(repo.path), bits: 2048 }) })
    const escrow = escrowNode.roles.find(r => r instanceof EscrowRole) as EscrowRole
    await escrow.enroll(agencyAddr, agencyRole.agency.createEnrollmentCode({ kind: 'escrow', ttlMs: 60_000 }).code)
    const sellerNode = await start('seller-p', ['seller'], [agencyAddr])
    await sellerNode.market.trust.set(agencyAddr)
    const buyerNode = await start('buyer-p', ['buyer'], [agencyAddr])
    await buyerNode.device.initialise({ passphrase: 'a long passphrase', bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })
    const csrs = await buyerNode.device.certificateRequests()
    const enrolled = agencyRole.agency.enroll({ code: agencyRole.agency.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 }).code, csrs: { signing: csrs.signing, encryption: csrs.encryption }, remotePeer: buyerNode.status().peerId })
    await buyerNode.device.installCertificates({ signing: enrolled.certificates.signing!, encryption: enrolled.certificates.encryption!, root: enrolled.root })
    await buyerNode.market.trust.set(agencyAddr, enrolled.root)
    const buyerId = buyerNode.status().peerId
    await escrow.ledger.deposit(buyerId, 1000)

    const plain = join(dir, 'album.bin')
    await writeFile(plain, randomBytes(12 * 64 * 1024 + 5))
    const seller = (sellerNode.roles.find(r => r instanceof SellerRole) as SellerRole).seller
    const published = await seller.publish(plain, { title: 'Kind of Blue', tags: ['modal'], price: 40, t: 1, n: 1, escrows: [escrowNode.status().peerId], chunkSize: 64 * 1024 })
    const buyer = (buyerNode.roles.find(r => r instanceof BuyerRole) as BuyerRole).buyer
    assert.equal((await buyer.search(['modal'])).length, 1)

    // the only provider serves a damaged last chunk: the download fails after the payment
    const manifest = (await sellerNode.market.content.manifest(published.content))!
    const stored = sellerNode.market.content.dataFile(published.content)
    const last = chunkOffset(manifest, manifest.chunkCount - 1) + 10
    const data = await readFile(stored)
    const good = data[last]!
    const damage = async (value: number): Promise<void> => {
      const handle = await open(stored, 'r+')
      await handle.write(Uint8Array.of(value), 0, 1, last)
      await handle.close()
    }
    await damage(good ^ 0xff)
    const out = join(dir, 'album.out')
    const events: any[] = []
    // the error names each provider dropped, and why
    await assert.rejects(buyer.buy(published.offer, { output: out, onProgress: e => events.push(e) }), {
      code: 'ERR_NO_PROVIDERS',
      message: new RegExp(`no provider left \\(${sellerNode.status().peerId}: served a chunk that does not match the manifest\\)`)
    })
    const paidAt = events.findIndex(e => e.phase === 'escrow' && e.state === 'answered')
    assert.ok(paidAt > 0 && events.slice(0, paidAt).some(e => e.phase === 'download'), 'paid after a verified chunk')
    assert.equal((await escrow.ledger.balance(buyerId)), 960, 'paid once')
    const purchases = await buyerNode.device.purchases()
    assert.deepEqual(purchases.map(p => p.state), ['complete'])
    for (const file of [out, `${out}.partial`]) await assert.rejects(stat(file), { code: 'ENOENT' }, 'no output from a failed download')

    // the provider mends its copy: buying again finishes the same purchase, paying nothing more
    await damage(good)
    const bought = await buyer.buy(published.offer, { output: out })
    assert.equal(bought.purchase, purchases[0]!.purchase)
    assert.ok(bought.resumedFrom >= 1 && bought.resumedFrom < manifest.chunkCount, `resumed from ${bought.resumedFrom}`)
    assert.equal(await sha(out), await sha(plain))
    assert.equal((await escrow.ledger.balance(buyerId)), 960, 'still paid once')
    assert.equal(await buyerNode.market.content.paidPurchase(published.content), undefined, 'the finished buy leaves no unfinished payment behind')
    // a later buy of the same offer is a new purchase, paid again
    const again = await buyer.buy(published.offer, {})
    assert.notEqual(again.purchase, bought.purchase)
    assert.equal((await escrow.ledger.balance(buyerId)), 920)
    assert.deepEqual((await escrow.ledger.audit()).violations, [])
  })
})
