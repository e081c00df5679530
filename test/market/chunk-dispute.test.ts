// The refund branch of a chunk dispute, between in-process nodes over real libp2p (the
// device is its real child process, the dispute goes through the control API): a seller
// whose stored ciphertext has a chunk that matches the manifest's hash but does not
// decrypt under K. The buyer's play fails on that chunk; the device refuses to dispute a
// good chunk; the dispute of the bad one refunds every escrow paid.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encryptFile } from '../../device/content-file.ts'
import { generateContentSecrets, storedChunkLength, toHex } from '../../device/crypto/index.ts'
import { encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf } from '../../device/objects/market.ts'
import { initAgency } from '../../node/agency/agency.ts'
import { chunkOffset } from '../../node/content/store.ts'
import { ControlClient } from '../../node/control/client.ts'
import { controlRoutes } from '../../node/control/routes.ts'
import { ControlServer } from '../../node/control/server.ts'
import { keywordsOf } from '../../node/discovery/keywords.ts'
import { EscrowFiles } from '../../node/escrow/state.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { AgencyRole } from '../../node/roles/agency.ts'
import { BuyerRole } from '../../node/roles/buyer.ts'
import { EscrowRole } from '../../node/roles/escrow.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { waitFor } from '../helpers/nodes.ts'
import type { RoleName } from '../../node/config.ts'
import { FAST_KDF, TEST_PASSPHRASE, testKeys } from '../helpers/keys.ts'
import { encodeContentKey } from '../../node/keys/content-key.ts'
import { contentKeyName } from '../../node/keys/keystore.ts'

const PRICE = 70
const CHUNK = 64 * 1024
/** the chunk the seller damaged, and hashed into its manifest as damaged */
const BAD = 3

describe('a chunk dispute between in-process nodes', function () {
  this.timeout(180_000)
  let dir: string
  const nodes: KeyfairNode[] = []
  let control: ControlServer | undefined

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-chunk-dispute-'))
  })

  after(async function () {
    await control?.stop()
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

  it('refunds every escrow paid for a chunk that matches the manifest and fails under K; a good chunk is never disputed', async function () {
    const agency = await start('agency', ['agency'], [], async repo => { await initAgency(repo.path, { keys: await testKeys(repo.path), bits: 2048 }) })
    const agencyAddr = agency.status().addresses[0]!
    const agencyRole = agency.roles.find(r => r instanceof AgencyRole) as AgencyRole
    const escrows: EscrowRole[] = []
    for (const name of ['escrow-a', 'escrow-b']) {
      const node = await start(name, ['escrow'], [agencyAddr], async repo => { await new EscrowFiles(repo.path).init({ keys: await testKeys(repo.path), bits: 2048 }) })
      const role = node.roles.find(r => r instanceof EscrowRole) as EscrowRole
      await role.enroll(agencyAddr, agencyRole.agency.createEnrollmentCode({ kind: 'escrow', ttlMs: 60_000 }).code)
      escrows.push(role)
    }
    const sellerNode = await start('seller', ['seller'], [agencyAddr])
    await sellerNode.market.trust.set(agencyAddr)
    const buyerNode = await start('buyer', ['buyer'], [agencyAddr])
    await waitFor(() => nodes.every(n => n.status().routingTableSize >= 2), 30_000, 'routing tables')
    await buyerNode.device.initialise({ passphrase: 'a long passphrase', bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })
    const csrs = await buyerNode.device.certificateRequests()
    const enrolled = agencyRole.agency.enroll({ code: agencyRole.agency.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 }).code, csrs: { signing: csrs.signing, encryption: csrs.encryption }, remotePeer: buyerNode.status().peerId })
    await buyerNode.device.installCertificates({ signing: enrolled.certificates.signing!, encryption: enrolled.certificates.encryption!, root: enrolled.root })
    await buyerNode.market.trust.set(agencyAddr, enrolled.root)
    const buyerId = buyerNode.status().peerId
    const sellerId = sellerNode.status().peerId
    for (const e of escrows) (await e.ledger.deposit(buyerId, 1000))

    // the seller's work: chunk BAD damaged after sealing, and the manifest hashing the damage,
    // so every peer's check of the ciphertext passes and only K shows the fault
    const plain = join(dir, 'work.bin')
    await writeFile(plain, randomBytes(8 * CHUNK + 99))
    const secrets = generateContentSecrets()
    const sealed = join(dir, 'sealed.kf')
    const manifest = await encryptFile(plain, sealed, { ...secrets, chunkSize: CHUNK })
    const data = await readFile(sealed)
    const at = chunkOffset(manifest, BAD)
    data[at + 100] = data[at + 100]! ^ 0x5a
    manifest.chunkHashes[BAD] = new Uint8Array(createHash('sha256').update(data.subarray(at, at + storedChunkLength(manifest, BAD))).digest())
    await writeFile(sealed, data)
    const content = await sellerNode.market.content.importCiphertext(encodeObject(manifest), sealed)
    const offer = await createOffer({
      sellerKey: await sellerNode.repo.loadIdentity(),
      terms: { content: contentIdOf(manifest), price: PRICE, currency: 'EUR', escrows: escrows.map(e => ({ peer: e.escrow.info().peer, n: e.escrow.info().n })), t: 2, expiry: Date.now() + 3_600_000 },
      title: 'Bitches Brew',
      tags: ['fusion'],
      key: secrets.key,
      contentSalt: secrets.salt,
      // device-bound: the buyer gets a licence from the online seller
      open: false
    })
    const offerId = await sellerNode.market.content.addOffer(offer)
    // the seller keeps K sealed in its key store to issue licences, as publishing does
    const sellerKeys = await testKeys(sellerNode.repo.path)
    await sellerKeys.put(contentKeyName(content), encodeContentKey({ key: secrets.key, salt: secrets.salt, offers: [offerId] }))
    sellerKeys.lock()
    await sellerNode.market.content.setServing(content, true)
    await sellerNode.discovery.announce(content, keywordsOf('Bitches Brew', 'fusion'))

    const buyer = (buyerNode.roles.find(r => r instanceof BuyerRole) as BuyerRole).buyer
    assert.deepEqual((await buyer.search(['fusion'])).map(o => o.offer), [offerId])
    const out = join(dir, 'work.out')
    await assert.rejects(buyer.buy(offerId, { output: out }), { code: 'ERR_CHUNK_AUTH' })
    await assert.rejects(stat(out), { code: 'ENOENT' }, 'no output from a failed play')
    const [purchase] = await buyerNode.device.purchases({ offer: offerId })
    assert.ok(purchase != null)
    assert.deepEqual([purchase.state, purchase.bound, purchase.accepted], ['complete', true, [1, 2]])
    assert.deepEqual(await Promise.all(escrows.map(async e => e.ledger.balance(buyerId))), [1000 - PRICE, 1000 - PRICE], 'paid at both escrows')

    // disputes go through the buyer node's control API, as `keyfair dispute --chunk N` does
    control = new ControlServer({ repo: buyerNode.repo, routes: controlRoutes(buyerNode, () => {}), port: 0 })
    await control.start()
    const api = new ControlClient(buyerNode.repo)
    const ledgers = async (): Promise<unknown> => Promise.all(escrows.map(async e => ({ postings: await e.ledger.postings({ limit: 10_000 }), holds: await e.ledger.holds({ limit: 10_000 }) })))
    const before = await ledgers()
    // a good chunk: the device refuses to sign (the dispute would disclose K), nothing is sent
    await assert.rejects(api.call('dispute', { purchase: purchase.purchase, chunk: 0 }), { code: 'ERR_CHUNK_DECRYPTS' })
    // bytes that are not the manifest's chunk (a provider's fault, not the seller's): refused too
    const forged = new Uint8Array(randomBytes(storedChunkLength(manifest, 1)))
    await assert.rejects(buyerNode.device.dispute({ purchase: purchase.purchase, reason: 'chunk', chunk: { index: 1, data: forged } }), { code: 'ERR_CHUNK_HASH' })
    assert.deepEqual(await ledgers(), before, 'no escrow heard of it')
    assert.equal((await buyerNode.device.purchase({ purchase: purchase.purchase })).state, 'complete')

    const sellerBefore = await Promise.all(escrows.map(async e => e.ledger.balance(sellerId)))
    const disputed = await api.call('dispute', { purchase: purchase.purchase, chunk: BAD })
    assert.equal(disputed.escrows.length, 2)
    for (const e of disputed.escrows) assert.deepEqual([e.state, e.refused], ['refunded', false], e.reason ?? e.error)
    assert.ok(disputed.escrows.every(e => e.reason?.includes(`chunk ${BAD} fails under the committed key`)), JSON.stringify(disputed))
    assert.deepEqual(await Promise.all(escrows.map(async e => e.ledger.balance(buyerId))), [1000, 1000], 'refunded at every escrow paid')
    assert.deepEqual(await Promise.all(escrows.map(async e => e.ledger.balance(sellerId))), sellerBefore, 'the seller is paid nothing')
    assert.equal((await buyerNode.device.purchase({ purchase: purchase.purchase })).state, 'disputed')
    for (const e of escrows) {
      assert.deepEqual((await e.ledger.holds({ buyer: buyerId })).map(h => h.state), ['refunded'])
      assert.deepEqual((await e.ledger.audit()).violations, [])
    }
  })
})
