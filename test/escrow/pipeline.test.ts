// The escrow's throughput machinery, each piece held to the rules it must not bend:
// the private operations in worker threads (same answers as in-thread), answers signed
// with a cached key (same bytes), group commit (each answer only after its own hold is
// durable; a refused hold writes nothing; a failed commit writes nothing and answers
// nothing), and the offer cache (keyed by the whole signed offer's CID).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { OutOfRangeError, i2ospMod, os2ip } from '../../device/crypto/index.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf, parseSignedUnblindAnswer } from '../../device/objects/market.ts'
import { signWithDeviceKey, signWithPeerKey, signingInput, verifyPeerSigned } from '../../device/objects/signed.ts'
import { HoldCommitter } from '../../node/escrow/commits.ts'
import { Ledger } from '../../node/escrow/ledger.ts'
import { SqliteLedger } from '../../node/escrow/sqlite-ledger.ts'
import { UnblindPool } from '../../node/escrow/pool.ts'
import { EscrowKey } from '../../node/escrow/unblind.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import { PASSPHRASE, createWorld } from '../helpers/escrow-world.ts'
import { encryptWork } from '../helpers/market.ts'
import type { NewHold } from '../../node/escrow/ledger.ts'
import type { Terms, UnblindAnswer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { KeyfairNode } from '../../node/keyfair-node.ts'
import type { World } from '../helpers/escrow-world.ts'
import type { TestWork } from '../helpers/market.ts'

const CONTENT = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')

describe('escrow pipeline: worker pool, cached signer, group commit, offer cache', function () {
  this.timeout(120_000)

  describe('in process', function () {
    let dir: string

    before(async function () {
      dir = await mkdtemp(join(tmpdir(), 'keyfair-pipeline-'))
    })

    after(async function () {
      await rm(dir, { recursive: true, force: true })
    })

    it('the worker pool answers exactly as the in-thread key, for several terms at once, and refuses b out of range', async function () {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const key = new EscrowKey(privateKey)
      const pool = new UnblindPool(privateKey, 2)
      try {
        assert.equal(pool.n, key.n)
        assert.deepEqual(pool.modulus, key.modulus)
        const terms = (price: number): Terms => ({ v: 1, seller: 'seller', content: CONTENT, price, currency: 'EUR', escrows: [{ peer: 'escrow', n: key.modulus }], t: 1, expiry: 1e13 })
        const jobs = Array.from({ length: 24 }, (_, i) => ({ b: i2ospMod(os2ip(randomBytes(300)) % key.n, key.n), terms: terms(1 + (i % 3)) }))
        const answers = await Promise.all(jobs.map(async j => pool.unblind(j.b, j.terms)))
        assert.equal(pool.pending, 0)
        jobs.forEach((j, i) => { assert.deepEqual(answers[i], key.unblind(j.b, j.terms), `job ${i}`) })
        await assert.rejects(pool.unblind(new Uint8Array(key.modulus.length), terms(1)), OutOfRangeError)
        await assert.rejects(pool.unblind(key.modulus, terms(1)), OutOfRangeError)
      } finally {
        await pool.close()
      }
      await assert.rejects(pool.unblind(new Uint8Array([1]), { v: 1, seller: 's', content: CONTENT, price: 1, currency: 'EUR', escrows: [], t: 1, expiry: 1 } as Terms), /closed/)
    })

    it('a worker thread loads only the key\'s crypto: Node built-ins and a few files, no codec or libp2p package', async function () {
      // every module a worker imports is loaded again into that worker's own heap
      const reached = new Set<string>()
      const bare = new Set<string>()
      const visit = async (file: string): Promise<void> => {
        if (reached.has(file)) return
        reached.add(file)
        const source = await readFile(file, 'utf8')
        // import … from, export … from, and bare `import '…'`
        for (const [, type, specifier] of source.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
          if (type != null) continue // erased by type stripping: never loaded
          if (specifier!.startsWith('.')) await visit(join(dirname(file), specifier!))
          else bare.add(specifier!)
        }
      }
      const root = fileURLToPath(new URL('../../', import.meta.url))
      await visit(join(root, 'node/escrow/unblind-worker.ts'))
      assert.deepEqual([...bare].filter(s => !s.startsWith('node:')), [], 'packages imported by the worker')
      assert.deepEqual([...reached].map(f => relative(root, f)).sort(), [
        'device/crypto/bigint.ts', 'device/crypto/bytes.ts', 'device/crypto/errors.ts', 'device/crypto/price.ts',
        'device/crypto/rsa.ts', 'device/error-root.ts', 'node/escrow/price-key.ts', 'node/escrow/unblind-worker.ts'
      ])
    })

    it('worker threads share the process\'s compile cache: a worker does not strip its TypeScript again', async function () {
      // in a process of its own, as keyfair's CLI runs: the cache enabled, the main thread's
      // modules flushed to it; then one worker starts and answers. Only the worker loads
      // unblind-worker.ts and price-key.ts, so new entries are the worker's own.
      const cache = join(dir, 'compile-cache')
      const script = `
        import module from 'node:module'
        import { generateKeyPairSync } from 'node:crypto'
        import { readdirSync } from 'node:fs'
        module.enableCompileCache(${JSON.stringify(cache)})
        const { UnblindPool } = await import(${JSON.stringify(new URL('../../node/escrow/pool.ts', import.meta.url).href)})
        const { i2ospMod } = await import(${JSON.stringify(new URL('../../device/crypto/index.ts', import.meta.url).href)})
        module.flushCompileCache()
        const entries = () => readdirSync(${JSON.stringify(cache)}, { recursive: true }).length
        const before = entries()
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
        const pool = new UnblindPool(privateKey, 1)
        const terms = { v: 1, seller: 's', content: ${JSON.stringify(CONTENT.toString())}, price: 1, currency: 'EUR', escrows: [{ peer: 'e', n: pool.modulus }], t: 1, expiry: 1e13 }
        const { CID } = await import(${JSON.stringify(import.meta.resolve('multiformats/cid'))})
        terms.content = CID.parse(terms.content)
        const z = await pool.unblind(i2ospMod(12345n, pool.n), terms)
        await pool.close()
        // in the same versioned directory as the main thread's, not one nested inside it
        const nested = readdirSync(module.getCompileCacheDir(), { withFileTypes: true }).filter(e => e.isDirectory()).map(e => e.name)
        console.log(JSON.stringify({ before, after: entries(), z: z.length, nested }))
      `
      const file = join(dir, 'cache-probe.mjs')
      await writeFile(file, script)
      const out = JSON.parse(execFileSync(process.execPath, [file], { encoding: 'utf8' }))
      assert.equal(out.z, 256)
      assert.ok(out.before > 0, 'the main thread wrote its entries')
      assert.ok(out.after > out.before, `the worker wrote entries of its own (${out.before} before, ${out.after} after)`)
      assert.deepEqual(out.nested, [], 'the worker wrote to a cache of its own')
    })

    it('signs answers with the key imported once, byte for byte as libp2p\'s own Ed25519 signature', async function () {
      const peerKey = await generateKeyPair('Ed25519')
      for (let i = 0; i < 5; i++) {
        const body: UnblindAnswer = { v: 1, request: CONTENT, purchase: randomBytes(16).toString('hex'), j: 1 + i, z: randomBytes(256), hold: randomBytes(16).toString('hex') }
        const cached = await signWithPeerKey('unblind-answer', body, peerKey)
        assert.deepEqual(Buffer.from(cached.sig), Buffer.from(await peerKey.sign(signingInput('unblind-answer', body))))
        await verifyPeerSigned(parseSignedUnblindAnswer(decodeObject(encodeObject(cached))), 'unblind-answer')
      }
    })

    let serial = 0
    const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n))
    const hold = (buyer: string, amount: number, purchase = `p${serial}`, request = `r${serial}`): NewHold => {
      serial++
      return {
        id: randomBytes(16).toString('hex'), device: 'device-1', purchase, j: 1, buyer, seller: 'seller', amount, offer: 'offer',
        request, requestBytes: bytes(64), answer: bytes(32), createdAt: 1000, expiresAt: 1e13
      }
    }
    const holdsSeenFromOutside = (file: string): number => {
      const db = new DatabaseSync(file, { readOnly: true })
      try {
        return (db.prepare('SELECT COUNT(*) AS n FROM holds').get() as { n: number }).n
      } finally {
        db.close()
      }
    }

    it('commits a group in one transaction, settles each caller only after it, and refused holds write nothing', async function () {
      const file = join(dir, 'group.db')
      const ledger = Ledger.open(file)
      try {
        ledger.deposit('alice', 10)
        ledger.deposit('bob', 3)
        const committer = new HoldCommitter(new SqliteLedger(ledger))
        const a1 = hold('alice', 4)
        const group = [
          a1,
          hold('alice', 4),
          hold('alice', 4), // 2 left: insufficient funds
          hold('bob', 3),
          { ...a1, id: randomBytes(16).toString('hex'), answer: bytes(32) }, // the same request again: its stored hold, no charge
          { ...hold('alice', 1), purchase: a1.purchase } // another request under a used purchase id
        ]
        let seenAtSettle: number[] = []
        const settled = group.map(async h => committer.open(h).finally(() => { seenAtSettle.push(holdsSeenFromOutside(file)) }))
        // nothing is written before the group commits
        assert.equal(holdsSeenFromOutside(file), 0)
        const outcomes = await Promise.allSettled(settled)
        assert.deepEqual(committer.stats, { commits: 1, holds: 6, largest: 6 })
        // every caller, answered or refused, settled only once the others' holds were visible to another connection: committed
        assert.deepEqual(seenAtSettle, [3, 3, 3, 3, 3, 3])
        const codes = outcomes.map(o => o.status === 'fulfilled' ? (o.value.charged ? 'charged' : 'replayed') : (o.reason as { code: string }).code)
        assert.deepEqual(codes, ['charged', 'charged', 'ERR_INSUFFICIENT_FUNDS', 'charged', 'replayed', 'ERR_PURCHASE_ID_USED'])
        const replay = outcomes[4]!
        assert.ok(replay.status === 'fulfilled')
        assert.equal(replay.value.hold.id, a1.id)
        assert.deepEqual(replay.value.hold.answer, a1.answer, 'the replay gets the stored answer')
        assert.equal(ledger.balance('alice'), 2)
        assert.equal(ledger.balance('bob'), 0)
        assert.equal(ledger.holds({ limit: 100 }).length, 3)
        assert.equal(ledger.postings({ kind: 'hold', limit: 100 }).length, 6, 'two postings per charged hold, none for the refused')
        assert.deepEqual(ledger.audit().violations, [])

        // a group whose commit fails: every caller is refused and nothing of it is written
        const before = { holds: ledger.holds({ limit: 100 }), postings: ledger.postings({ limit: 1000 }) }
        const other = new DatabaseSync(file)
        other.exec('BEGIN IMMEDIATE')
        ;(ledger as unknown as { db: DatabaseSync }).db.exec('PRAGMA busy_timeout = 50')
        seenAtSettle = []
        const failing = [hold('alice', 1), hold('alice', 1)].map(async h => committer.open(h))
        const failed = await Promise.allSettled(failing)
        other.exec('ROLLBACK')
        other.close()
        assert.deepEqual(failed.map(f => f.status), ['rejected', 'rejected'])
        assert.deepEqual({ holds: ledger.holds({ limit: 100 }), postings: ledger.postings({ limit: 1000 }) }, before)
        assert.equal(ledger.balance('alice'), 2)
        assert.deepEqual(ledger.audit().violations, [])
      } finally {
        ledger.close()
      }
    })
  })

  describe('over libp2p, with the escrow role', function () {
    let world: World
    let work: TestWork
    let buyer: KeyfairNode

    before(async function () {
      world = await createWorld()
      const plain = join(world.dir, 'work.bin')
      await writeFile(plain, randomBytes(10_000))
      work = await encryptWork(world.dir, 'work', plain)
      buyer = await world.startNode('buyer', [])
    })

    after(async function () {
      await world?.stop()
    })

    const offerFor = async (escrow: { peer: string, n: Uint8Array }, price: number): Promise<Signed<any>> => createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 't', tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
    })

    it('sends each answer only after its hold is committed, charges once under concurrency, and refuses the double spend', async function () {
      const escrow = await world.startEscrow('escrow-pool')
      assert.ok(escrow.role.unblindWorkers >= 1, 'private operations in worker threads by default')
      const ledgerFile = join(world.dir, 'escrow-pool', 'escrow', 'ledger.db')
      const addr = multiaddr(escrow.node.status().addresses[0]!)
      const buyerId = buyer.status().peerId
      const PRICE = 5
      const COUNT = 16
      await escrow.role.ledger.deposit(buyerId, COUNT * PRICE)
      const offer = encodeObject(await offerFor(escrow, PRICE))
      const { device } = await world.device('pool')
      const requests: Array<{ purchase: string, request: Uint8Array }> = []
      for (let i = 0; i < COUNT + 1; i++) {
        const p = await device.beginPurchase({ offer, manifest: work.manifestBytes, buyer: buyerId })
        requests.push({ purchase: p.purchase, request: (await device.requestShare({ purchase: p.purchase, j: 1 })).request })
      }
      const committedWhenAnswered = (answer: Uint8Array): boolean => {
        const id = parseSignedUnblindAnswer(decodeObject(answer)).body.hold
        const db = new DatabaseSync(ledgerFile, { readOnly: true })
        try {
          return db.prepare('SELECT id FROM holds WHERE id = ?').get(id) != null
        } finally {
          db.close()
        }
      }
      // COUNT purchases at once, the first one sent twice, plus one more than the buyer can pay
      const send = async (request: Uint8Array): Promise<{ answer: Uint8Array, committed: boolean }> => {
        const answer = await requestUnblind({ connectionManager: buyer.streams }, addr, request)
        return { answer, committed: committedWhenAnswered(answer) }
      }
      const results = await Promise.allSettled([...requests.map(async r => send(r.request)), send(requests[0]!.request)])
      const answered = results.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
      // of the COUNT + 1 distinct purchases, exactly the one beyond the funds is refused
      const refused = results.slice(0, COUNT + 1).flatMap(r => r.status === 'rejected' ? [(r.reason as { code: string }).code] : [])
      assert.deepEqual(refused, ['ERR_INSUFFICIENT_FUNDS'], 'exactly one purchase beyond the funds is refused')
      assert.ok(answered.length >= COUNT)
      assert.ok(answered.every(a => a.committed), 'every answer arrived with its hold already committed')
      assert.equal((await escrow.role.ledger.balance(buyerId)), 0, 'each purchase charged once')
      assert.equal((await escrow.role.ledger.holds({ limit: 100 })).length, COUNT)
      const first = results[0]!
      const twice = results[COUNT + 1]!
      if (first.status === 'fulfilled' && twice.status === 'fulfilled') assert.deepEqual(twice.value.answer, first.value.answer, 'the same request got the same answer')
      else assert.equal(first.status, twice.status, 'the same request has the same fate')
      // the devices accept their answers: the private operation in the workers is right
      for (const [i, r] of results.slice(0, COUNT + 1).entries()) {
        if (r.status !== 'fulfilled') continue
        assert.deepEqual(await device.acceptAnswer({ purchase: requests[i]!.purchase, j: 1, answer: r.value.answer }), { accepted: true, have: 1, need: 1 })
      }
      const stats = escrow.role.escrow.commitStats!
      assert.ok(stats.holds >= COUNT && stats.commits <= stats.holds, JSON.stringify(stats))
      assert.deepEqual((await escrow.role.ledger.audit()).violations, [])
    })

    it('verifies an offer once per CID: the same offer under another signature is still refused, writing nothing', async function () {
      const escrow = await world.startEscrow('escrow-offers')
      const addr = multiaddr(escrow.node.status().addresses[0]!)
      const buyerId = buyer.status().peerId
      await escrow.role.ledger.deposit(buyerId, 100)
      const offer = await offerFor(escrow, 10)
      const d = await world.device('offers')
      const p = await d.device.beginPurchase({ offer: encodeObject(offer), manifest: work.manifestBytes, buyer: buyerId })
      const { request } = await d.device.requestShare({ purchase: p.purchase, j: 1 })
      await requestUnblind({ connectionManager: buyer.streams }, addr, request)
      const before = { holds: (await escrow.role.ledger.holds({ limit: 100 })), postings: (await escrow.role.ledger.postings({ limit: 1000 })) }
      // the cached offer's body with another signature, in a request the device signed properly
      const signed = decodeObject(request) as Signed<Record<string, unknown>>
      const { signingKey } = await d.store.open(Buffer.from(PASSPHRASE))
      const der = new Uint8Array(new X509Certificate((await d.device.certificates()).signing).raw)
      const forged = encodeObject(signWithDeviceKey('unblind-request', { ...signed.body, purchase: 'ef'.repeat(16), offer: { ...offer, sig: randomBytes(64) } }, signingKey, der))
      await assert.rejects(requestUnblind({ connectionManager: buyer.streams }, addr, forged), { code: 'ERR_BAD_SIGNATURE' })
      assert.deepEqual({ holds: (await escrow.role.ledger.holds({ limit: 100 })), postings: (await escrow.role.ledger.postings({ limit: 1000 })) }, before)
    })

    it('does the private operations on the main thread with unblindWorkers 0', async function () {
      const escrow = await world.startEscrow('escrow-inline', { unblindWorkers: 0 })
      assert.equal(escrow.role.unblindWorkers, 0)
      const buyerId = buyer.status().peerId
      await escrow.role.ledger.deposit(buyerId, 10)
      const { device } = await world.device('inline')
      const p = await device.beginPurchase({ offer: encodeObject(await offerFor(escrow, 10)), manifest: work.manifestBytes, buyer: buyerId })
      const { request } = await device.requestShare({ purchase: p.purchase, j: 1 })
      const answer = await requestUnblind({ connectionManager: buyer.streams }, multiaddr(escrow.node.status().addresses[0]!), request)
      assert.deepEqual(await device.acceptAnswer({ purchase: p.purchase, j: 1, answer }), { accepted: true, have: 1, need: 1 })
      assert.equal((await escrow.role.ledger.balance(buyerId)), 0)
    })
  })
})
