// The marketplace under faults, on 10 real node processes (an agency, 5 escrows, a
// seller, 3 buyers) driven through the CLI and control API: a dead escrow and a lying
// one, a provider serving corrupt chunks, a buyer disputing a good purchase, an
// interrupted download, a seller whose share wrapping is bad, and a lent licence.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { keyCommitment } from '../../device/crypto/index.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { parseManifest } from '../../device/objects/market.ts'
import { signWithPeerKey, signedId } from '../../device/objects/signed.ts'
import { ControlClient } from '../../node/control/client.ts'
import { decodeContentKey } from '../../node/keys/content-key.ts'
import { NodeKeyStore, contentKeyName } from '../../node/keys/keystore.ts'
import { Repo } from '../../node/repo.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { KEYFAIR_BIN, Swarm } from '../../scripts/swarm.ts'
import { FAST_KDF } from '../helpers/keys.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'

const PASSPHRASE = 'swarm faults passphrase'
const PRICE = 50

const cli = swarmCli(PASSPHRASE)

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')

describe('marketplace faults on a 10-process swarm', function () {
  this.timeout(300_000)
  let swarm: Swarm
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-faults-'))
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE, KEYFAIR_KDF_N: String(FAST_KDF.N) },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        ...[false, true, false, false, false].map(faulty => ({ roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048', ...(faulty ? ['--faulty-answers'] : [])]] })),
        { roles: ['seller'] },
        { roles: ['buyer'] },
        { roles: ['buyer'] },
        { roles: ['buyer'] }
      ]
    })
  })

  after(async function () {
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('buys through a dead and a lying escrow, around a corrupt provider, resumes, and refunds only the seller\'s faults', async function () {
    const [agency, e1, e2, e3, e4, e5, seller, a, b, c] = swarm.nodes as [SwarmNode, ...SwarmNode[]]
    const escrows = [e1!, e2!, e3!, e4!, e5!]
    const agencyAddr = agency.addresses[0]!
    for (const e of escrows) {
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
      await cli(e, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
    }
    await cli(seller!, 'trust', '--agency', agencyAddr)
    for (const buyer of [a!, b!, c!]) {
      await cli(buyer, 'device', 'init', '--bits', '2048')
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
      await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)
      for (const e of escrows) await cli(e, 'escrow', 'deposit', buyer.peerId, '10000')
    }
    const balance = async (e: SwarmNode, peer: string): Promise<number> => (await cli(e, 'escrow', 'accounts')).accounts.find((x: any) => x.account === peer)?.balance ?? 0

    // work 1 lists the escrow to be killed first and the lying one second
    const work1 = join(dir, 'work1.bin')
    await writeFile(work1, randomBytes(9 * 1024 * 1024 + 7))
    const order = escrows.flatMap(e => ['--escrow', e.addresses[0]!])
    const pub1 = await cli(seller!, 'publish', work1, '--title', 'Giant Steps', '--tags', 'jazz', '--price', String(PRICE), '--escrows', '3-of-5', ...order)
    const work2 = join(dir, 'work2.bin')
    await writeFile(work2, randomBytes(24 * 1024 * 1024))
    const pub2 = await cli(seller!, 'publish', work2, '--title', 'Naima', '--tags', 'ballad', '--price', String(PRICE), '--escrows', '3-of-5', ...[e3!, e4!, e5!, e1!, e2!].flatMap(e => ['--escrow', e.addresses[0]!]))
    await swarm.stopNode(e1!.index, 'SIGKILL')

    // 1. a dead escrow is skipped; a lying one is refunded by its fraud proof; the share is bought elsewhere
    assert.ok((await cli(a!, 'search', 'jazz')).offers.some((o: any) => o.offer === pub1.offer))
    const outA = join(dir, 'a.out')
    const boughtA = await cli(a!, 'buy', pub1.offer, '--out', outA, '--seed')
    assert.equal(await sha(outA), await sha(work1))
    assert.deepEqual(boughtA.escrows.map((e: any) => [e.j, e.outcome]), [[1, 'unavailable'], [2, 'fraud-refunded'], [3, 'accepted'], [4, 'accepted'], [5, 'accepted']])
    assert.equal(await balance(e2!, a!.peerId), 10000, 'the lying escrow refunded')
    assert.equal((await cli(e2!, 'escrow', 'accounts')).openHolds, 0)
    await cli(a!, 'confirm', boughtA.purchase)
    // and again offline from the sealed licence, to stdout
    const piped = await new Promise<Buffer>((resolve, reject) => {
      execFile(process.execPath, [KEYFAIR_BIN, '--repo', a!.repo, 'play', pub1.content, '--out', '-'], { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout) => { if (err != null) reject(err); else resolve(stdout) })
    })
    assert.equal(createHash('sha256').update(piped).digest('hex'), await sha(work1))

    // 2. A now serves corrupt chunks: B drops it and gets them from the seller
    const stored = join(a!.repo, 'content', pub1.content, 'data.kf')
    const handle = await open(stored, 'r+')
    for (let i = 0; i < 10; i++) await handle.write(Uint8Array.of(0xff), 0, 1, i * (1024 * 1024 + 16) + 100)
    await handle.close()
    assert.ok((await cli(b!, 'search', 'jazz')).offers.some((o: any) => o.offer === pub1.offer))
    const outB = join(dir, 'b.out')
    const boughtB = await cli(b!, 'buy', pub1.offer, '--out', outB, '--seed')
    assert.equal(await sha(outB), await sha(work1))
    assert.ok(boughtB.dropped.some((d: any) => d.provider === a!.peerId && /does not match the manifest/.test(d.reason)), JSON.stringify(boughtB.dropped))
    // what each provider delivered: the seller served (at least) the rest, and nothing counts twice
    const delivered = (await stat(outB)).size
    assert.ok(boughtB.sources.some((x: any) => x.provider === seller!.peerId && x.bytes > 0), JSON.stringify(boughtB.sources))
    const total = boughtB.sources.reduce((n: number, x: any) => n + x.bytes, 0)
    assert.ok(total >= delivered && total < delivered + 1024 * 1024, `sources ${total} bytes for a ${delivered}-byte work`)

    // 3. B disputes a good chunk: its device refuses before anything is sent (the dispute
    // would disclose K); B then confirms and every escrow pays the seller
    const sellerBefore = await Promise.all([e3!, e4!, e5!].map(async e => balance(e, seller!.peerId)))
    await assert.rejects(cli(b!, 'dispute', boughtB.purchase, '--chunk', '0'), { code: 'ERR_CHUNK_DECRYPTS' })
    assert.deepEqual(await Promise.all([e3!, e4!, e5!].map(async e => balance(e, seller!.peerId))), sellerBefore, 'nothing settled')
    const confirmedB = await cli(b!, 'confirm', boughtB.purchase)
    assert.ok(confirmedB.escrows.every((e: any) => e.state === 'released'), JSON.stringify(confirmedB))
    const sellerAfter = await Promise.all([e3!, e4!, e5!].map(async e => balance(e, seller!.peerId)))
    assert.deepEqual(sellerAfter.map((x, i) => x - sellerBefore[i]!), [PRICE, PRICE, PRICE])

    // 4. an interrupted download resumes where it stopped
    assert.ok((await cli(c!, 'search', 'ballad')).offers.some((o: any) => o.offer === pub2.offer))
    const client = new ControlClient(new Repo(c!.repo))
    const interrupt = new AbortController()
    let seen = 0
    await assert.rejects(client.stream('buy', { offer: pub2.offer }, (event: any) => {
      if (event.phase === 'download' && ++seen === 4) interrupt.abort()
    }, { signal: interrupt.signal, timeoutMs: 120_000 }))
    const outC = join(dir, 'c.out')
    const boughtC = await cli(c!, 'buy', pub2.offer, '--out', outC)
    assert.ok(boughtC.resumedFrom >= 4 && boughtC.resumedFrom < 24, `resumed from ${boughtC.resumedFrom}`)
    assert.equal(await sha(outC), await sha(work2))
    await cli(c!, 'confirm', boughtC.purchase)

    // 5. a seller whose share wrapping is bad (K' wrapped, K committed), its offer served by seeder B, seller offline
    await swarm.stopNode(seller!.index)
    const sellerKey = privateKeyFromProtobuf(await readFile(join(seller!.repo, 'identity.key')))
    // the seller's K, unsealed from its key store with the repo's passphrase
    const sealedK = await (await new NodeKeyStore(join(seller!.repo, 'keys')).unlock(PASSPHRASE)).get(contentKeyName(pub1.content))
    const realKey = decodeContentKey(sealedK!).key
    const manifest = parseManifest(decodeObject(await readFile(join(seller!.repo, 'content', pub1.content, 'manifest.cbor'))))
    const real = await (async () => {
      for (const name of await (await import('node:fs/promises')).readdir(join(b!.repo, 'content', pub1.content, 'offers'))) {
        return decodeObject(await readFile(join(b!.repo, 'content', pub1.content, 'offers', name))) as Signed<Offer>
      }
      throw new Error('B holds no offer')
    })()
    const bad = await createOffer({
      sellerKey,
      terms: { ...real.body.terms, escrows: [e3!, e4!, e5!].map(e => real.body.terms.escrows.find(x => x.peer === e.peerId)!), price: PRICE + 1 },
      title: 'Giant Steps', tags: ['jazz'], key: randomBytes(32), contentSalt: manifest.salt, open: true
    })
    const forged = await signWithPeerKey('offer', { ...bad.body, kc: keyCommitment(realKey) }, sellerKey) as Signed<Offer>
    const forgedId = signedId(forged).toString()
    await mkdir(join(b!.repo, 'content', pub1.content, 'offers'), { recursive: true })
    await writeFile(join(b!.repo, 'content', pub1.content, 'offers', forgedId), encodeObject(forged))
    assert.ok((await cli(c!, 'search', 'jazz')).offers.some((o: any) => o.offer === forgedId))
    const cBefore = await Promise.all([e3!, e4!, e5!].map(async e => balance(e, c!.peerId)))
    await assert.rejects(cli(c!, 'buy', forgedId, '--out', join(dir, 'never.out')), { code: 'ERR_KEY_COMMITMENT' })
    const failed = (await cli(c!, 'purchases')).purchases.find((p: any) => p.offer === forgedId)
    assert.equal(failed.state, 'failed')
    const refund = await cli(c!, 'dispute', failed.purchase)
    assert.ok(refund.escrows.every((e: any) => e.state === 'refunded' && e.refused === false), JSON.stringify(refund))
    assert.deepEqual(await Promise.all([e3!, e4!, e5!].map(async e => balance(e, c!.peerId))), cBefore, 'C got every share back')

    // 6. lending: A's licence copied into C's device decrypts nothing (C takes the
    // ciphertext from B on portable media: the failed buy above stopped its download)
    const lentMedia = join(dir, 'lent-media')
    await cli(b!, 'export', pub1.content, lentMedia)
    await cli(c!, 'import', lentMedia)
    await copyFile(join(a!.repo, 'device', 'licence', pub1.content), join(c!.repo, 'device', 'licence', pub1.content))
    await assert.rejects(cli(c!, 'play', pub1.content, '--out', join(dir, 'lent.out')), { code: 'ERR_RECORD_UNREADABLE' })

    for (const e of [e2!, e3!, e4!, e5!]) {
      const audit = await cli(e, 'escrow', 'audit')
      assert.equal(audit.ok, true, JSON.stringify(audit.violations))
    }
  })
})
