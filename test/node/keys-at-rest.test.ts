// Long-term secrets at rest: the node's key store, every role started through the CLI with
// its passphrase (a wrong one refused with nothing changed on disk), plaintext key files of
// older repos sealed at start, and a whole marketplace's repos scanned for any key in clear.
import assert from 'node:assert/strict'
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { inspect } from 'node:util'
import { base64urlToBigint, i2osp, byteLength } from '../../device/crypto/index.ts'
import { KeyStore } from '../../device/store/keystore.ts'
import { createRootCertificate } from '../../node/agency/x509.ts'
import { decodeContentKey } from '../../node/keys/content-key.ts'
import { AGENCY_CA_KEY, ESCROW_KEY, NodeKeyStore, contentKeyName, kdfFromEnv } from '../../node/keys/keystore.ts'
import { Swarm } from '../../scripts/swarm.ts'
import { TEST_ENV, runCli, startNodeProcess } from '../helpers/cli.ts'
import { FAST_KDF, TEST_PASSPHRASE } from '../helpers/keys.ts'
import { filesUnder, privateParts, scan } from '../helpers/scan.ts'
import type { KeyObject } from 'node:crypto'
import type { SwarmNode } from '../../scripts/swarm.ts'

/** Every file under `root`: path → SHA-256 and mode */
async function snapshot (root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const file of await filesUnder(root)) {
    const info = await stat(file)
    out[relative(root, file)] = `${createHash('sha256').update(await readFile(file)).digest('hex')} ${(info.mode & 0o777).toString(8)}`
  }
  return out
}

async function cliJson (args: string[], env: NodeJS.ProcessEnv = {}): Promise<any> {
  const result = await runCli(['--json', ...args], env)
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(result.stdout)
}

async function cliError (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: string, message: string }> {
  const result = await runCli(['--json', ...args], env)
  assert.equal(result.code, 1, `expected a refusal: ${result.stdout}`)
  return JSON.parse(result.stderr).error
}

describe('keys at rest', function () {
  this.timeout(240_000)
  let dir: string

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-keys-'))
  })

  after(async function () {
    await rm(dir, { recursive: true, force: true })
  })

  describe('the node key store', function () {
    it('seals records under one store key; a renamed, moved or altered record does not open', async function () {
      const store = new NodeKeyStore(join(dir, 'unit', 'keys'))
      const keys = await store.create(TEST_PASSPHRASE, { kdf: FAST_KDF })
      assert.equal((await stat(store.file)).mode & 0o777, 0o600)
      assert.equal((await stat(store.dir)).mode & 0o777, 0o700)
      const secret = new Uint8Array(randomBytes(32))
      await keys.put('content-abc', secret)
      await keys.put('escrow-rsa', new Uint8Array(randomBytes(40)))
      assert.equal((await stat(join(store.dir, 'content-abc.sealed'))).mode & 0o777, 0o600)
      assert.deepEqual(await keys.get('content-abc'), secret)
      assert.equal(await keys.get('content-none'), undefined)
      assert.ok(!(await readFile(join(store.dir, 'content-abc.sealed'))).includes(Buffer.from(secret)))

      // another record's file under this name
      await copyFile(join(store.dir, 'escrow-rsa.sealed'), join(store.dir, 'content-abc.sealed'))
      await assert.rejects(keys.get('content-abc'), { code: 'ERR_RECORD_UNREADABLE' })
      // a record of another store (same passphrase, same name)
      const other = await new NodeKeyStore(join(dir, 'unit', 'other')).create(TEST_PASSPHRASE, { kdf: FAST_KDF })
      await other.put('content-abc', secret)
      await copyFile(join(dir, 'unit', 'other', 'content-abc.sealed'), join(store.dir, 'content-abc.sealed'))
      await assert.rejects(keys.get('content-abc'), { code: 'ERR_RECORD_UNREADABLE' })
      // one flipped bit
      await keys.put('content-abc', secret)
      const sealed = await readFile(join(store.dir, 'content-abc.sealed'))
      sealed[20]! ^= 1
      await writeFile(join(store.dir, 'content-abc.sealed'), sealed)
      await assert.rejects(keys.get('content-abc'), { code: 'ERR_RECORD_UNREADABLE' })

      // unlocked again: the same store key, so the untouched record opens
      const before = await snapshot(store.dir)
      await assert.rejects(store.unlock('not the passphrase'), { code: 'ERR_WRONG_PASSPHRASE' })
      assert.deepEqual(await snapshot(store.dir), before, 'a wrong passphrase changes nothing')
      const again = await store.unlock(TEST_PASSPHRASE)
      assert.equal((await again.get('escrow-rsa'))?.length, 40)

      // nothing prints the store key; a locked store refuses
      assert.equal(inspect(again), `[UnlockedKeys ${again.id}]`)
      assert.equal(JSON.stringify({ again }), `{"again":"[UnlockedKeys ${again.id}]"}`)
      again.lock()
      await assert.rejects(again.get('escrow-rsa'), { code: 'ERR_KEYSTORE_LOCKED' })
      await assert.rejects(store.create(TEST_PASSPHRASE, { kdf: FAST_KDF }), { code: 'ERR_KEYSTORE_EXISTS' })
    })

    it('refuses a weak passphrase, a KDF below 2^14, and a store file others can read', async function () {
      const store = new NodeKeyStore(join(dir, 'unit2', 'keys'))
      await assert.rejects(store.create('short', { kdf: FAST_KDF }), { code: 'ERR_WEAK_PASSPHRASE' })
      await assert.rejects(store.create(TEST_PASSPHRASE, { kdf: { N: 2 ** 13, r: 8, p: 1 } }), { code: 'ERR_STORE_CORRUPT' })
      assert.equal(await store.exists(), false, 'nothing written')
      assert.throws(() => kdfFromEnv({ KEYFAIR_KDF_N: '8192' }), { code: 'ERR_BAD_CONFIG' })
      assert.deepEqual(kdfFromEnv({ KEYFAIR_KDF_N: '16384' }), { N: 16384, r: 8, p: 1 })
      assert.equal(kdfFromEnv({}), undefined)
      await store.create(TEST_PASSPHRASE, { kdf: FAST_KDF })
      await chmod(store.file, 0o640)
      await assert.rejects(store.unlock(TEST_PASSPHRASE), { code: 'ERR_INSECURE_FILE' })
    })
  })

  describe('roles through the CLI', function () {
    it('agency, escrow, seller and buyer start with the passphrase; a wrong one is refused and changes nothing; none is ERR_PASSPHRASE_REQUIRED', async function () {
      const repos = { agency: join(dir, 'cli-agency'), escrow: join(dir, 'cli-escrow'), seller: join(dir, 'cli-seller'), buyer: join(dir, 'cli-buyer') }
      for (const repo of Object.values(repos)) {
        const init = await cliJson(['--repo', repo, 'init'])
        assert.equal(init.keyStore, true)
      }
      await cliJson(['--repo', repos.agency, 'agency', 'init', '--bits', '2048'])
      await cliJson(['--repo', repos.escrow, 'escrow', 'init', '--bits', '2048'])
      // `agency init` with a wrong passphrase: refused before anything is made
      const other = join(dir, 'cli-agency-2')
      await cliJson(['--repo', other, 'init'])
      const bare = await snapshot(other)
      assert.equal((await cliError(['--repo', other, 'agency', 'init', '--bits', '2048'], { KEYFAIR_PASSPHRASE: 'a wrong passphrase' })).code, 'ERR_WRONG_PASSPHRASE')
      assert.deepEqual(await snapshot(other), bare)

      for (const role of ['agency', 'escrow', 'seller', 'buyer'] as const) {
        const repo = repos[role]
        const node = await startNodeProcess(['--repo', repo, 'start', '--role', role, '--listen', '/ip4/127.0.0.1/tcp/0'])
        try {
          if (role === 'buyer') await cliJson(['--repo', repo, 'device', 'init', '--bits', '2048'])
        } finally {
          await node.stop()
        }
        const before = await snapshot(repo)
        const wrong = await cliError(['--repo', repo, 'start', '--role', role, '--listen', '/ip4/127.0.0.1/tcp/0'], { KEYFAIR_PASSPHRASE: 'not this repo\'s passphrase' })
        assert.equal(wrong.code, 'ERR_WRONG_PASSPHRASE', `${role}: ${wrong.message}`)
        assert.deepEqual(await snapshot(repo), before, `${role}: a wrong passphrase changed the repo`)
        if (role !== 'buyer') {
          assert.equal((await cliError(['--repo', repo, 'start', '--role', role], { KEYFAIR_PASSPHRASE: '' })).code, 'ERR_PASSPHRASE_REQUIRED')
          assert.deepEqual(await snapshot(repo), before)
        }
        // and it starts again with the right one
        const again = await startNodeProcess(['--repo', repo, 'start', '--role', role, '--listen', '/ip4/127.0.0.1/tcp/0'])
        await again.stop()
      }
      const pass = join(dir, 'pass')
      await writeFile(pass, `${TEST_PASSPHRASE}\n`, { mode: 0o600 })
      const byFile = await startNodeProcess(['--repo', repos.escrow, 'start', '--role', 'escrow', '--passphrase-file', pass], { KEYFAIR_PASSPHRASE: '' })
      await byFile.stop()
    })

    it('a repo of an earlier version: its plaintext keys are sealed at the first start with the passphrase, and removed', async function () {
      const repo = join(dir, 'legacy')
      assert.equal((await cliJson(['--repo', repo, 'init'], { KEYFAIR_PASSPHRASE: '' })).keyStore, false)
      // the files as earlier versions wrote them
      const ca = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const escrow = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const now = Date.now()
      await mkdir(join(repo, 'agency'), { mode: 0o700 })
      await writeFile(join(repo, 'agency', 'ca.key'), ca.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
      await writeFile(join(repo, 'agency', 'ca.crt'), createRootCertificate(ca.privateKey, ca.publicKey, { commonName: 'old agency' }, { notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) }))
      await mkdir(join(repo, 'escrow'), { mode: 0o700 })
      await writeFile(join(repo, 'escrow', 'escrow.key'), escrow.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
      const cid = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
      const K = randomBytes(32)
      const salt = randomBytes(16)
      await mkdir(join(repo, 'seller'), { mode: 0o700 })
      await writeFile(join(repo, 'seller', `${cid}.key`), JSON.stringify({ key: K.toString('hex'), salt: salt.toString('hex'), offers: ['o1'] }), { mode: 0o600 })
      const roles = ['--role', 'agency,escrow,seller', '--listen', '/ip4/127.0.0.1/tcp/0']

      // without the passphrase nothing is touched
      const before = await snapshot(repo)
      assert.equal((await cliError(['--repo', repo, 'start', ...roles], { KEYFAIR_PASSPHRASE: '' })).code, 'ERR_PASSPHRASE_REQUIRED')
      assert.deepEqual(await snapshot(repo), before)

      const node = await startNodeProcess(['--repo', repo, 'start', ...roles])
      await node.stop()
      for (const file of ['agency/ca.key', 'escrow/escrow.key', `seller/${cid}.key`]) {
        await assert.rejects(stat(join(repo, file)), { code: 'ENOENT' }, `${file} is still there`)
      }
      const keys = await new NodeKeyStore(join(repo, 'keys')).unlock(TEST_PASSPHRASE)
      const jwk = (k: KeyObject | undefined): unknown => k?.export({ format: 'jwk' })
      assert.deepEqual(jwk(await keys.getPrivateKey(AGENCY_CA_KEY)), jwk(ca.privateKey))
      assert.deepEqual(jwk(await keys.getPrivateKey(ESCROW_KEY)), jwk(escrow.privateKey))
      const content = decodeContentKey((await keys.get(contentKeyName(cid)))!)
      assert.deepEqual(Buffer.from(content.key), K)
      assert.deepEqual(Buffer.from(content.salt), salt)
      assert.deepEqual(content.offers, ['o1'])
      assert.deepEqual([...node.sealedKeyFiles].sort(), ['agency/ca.key', 'escrow/escrow.key', `seller/${cid}.key`].map(f => join(repo, f)).sort())
      // once: a second start seals nothing
      const second = await startNodeProcess(['--repo', repo, 'start', ...roles])
      await second.stop()
      assert.deepEqual(second.sealedKeyFiles, [])
      assert.deepEqual(await scan([repo], [...privateParts('ca', ca.privateKey), ...privateParts('escrow', escrow.privateKey), { name: 'K', bytes: K }]), [])
    })
  })

  describe('a whole marketplace, scanned', function () {
    const PASSPHRASE = 'scan test repo passphrase'
    let swarm: Swarm | undefined

    after(async function () {
      await swarm?.stop()
    })

    it('leaves no private key and no content key in clear in any repo; a planted one is found', async function () {
      swarm = await Swarm.start({
        topology: 'star',
        env: { ...TEST_ENV, KEYFAIR_PASSPHRASE: PASSPHRASE },
        nodes: [
          { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
          { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
          { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
          { roles: ['seller'] },
          { roles: ['buyer'] }
        ]
      })
      const [agency, e1, e2, seller, buyer] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
      const env = { KEYFAIR_PASSPHRASE: PASSPHRASE }
      const agencyAddr = agency.addresses[0]!
      for (const e of [e1, e2]) {
        const { code } = await cliJson(['--repo', agency.repo, 'agency', 'enroll-code', '--for', 'escrow'], env)
        await cliJson(['--repo', e.repo, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code], env)
        await cliJson(['--repo', e.repo, 'escrow', 'deposit', buyer.peerId, '1000'], env)
      }
      await cliJson(['--repo', seller.repo, 'trust', '--agency', agencyAddr], env)
      await cliJson(['--repo', buyer.repo, 'device', 'init', '--bits', '2048'], env)
      const { code } = await cliJson(['--repo', agency.repo, 'agency', 'enroll-code', '--for', 'device'], env)
      await cliJson(['--repo', buyer.repo, 'device', 'enroll', '--agency', agencyAddr, '--code', code], env)

      const work = join(dir, 'work.bin')
      await writeFile(work, randomBytes(300_000))
      const published = await cliJson(['--repo', seller.repo, 'publish', work, '--title', 'Sealed Keys', '--tags', 'scan', '--price', '10', '--escrows', '2-of-2'], env)
      const found = await cliJson(['--repo', buyer.repo, 'search', 'scan'], env)
      assert.ok(found.offers.some((o: { offer: string }) => o.offer === published.offer), 'the buyer finds the offer')
      const out = join(dir, 'bought.bin')
      const bought = await cliJson(['--repo', buyer.repo, 'buy', published.offer, '--out', out], env)
      assert.equal(bought.bound, true, 'a device-bound licence from the seller')
      assert.deepEqual(await readFile(out), await readFile(work))
      await cliJson(['--repo', buyer.repo, 'confirm', bought.purchase], env)

      // every node stopped (its repo kept), then the secrets unsealed with the product's own code
      for (const node of swarm.nodes) await swarm.stopNode(node.index)
      const secrets: Array<{ name: string, bytes: Uint8Array }> = []
      const unlock = async (node: SwarmNode): Promise<Awaited<ReturnType<NodeKeyStore['unlock']>>> => new NodeKeyStore(join(node.repo, 'keys')).unlock(PASSPHRASE)
      secrets.push(...privateParts('agency CA', (await (await unlock(agency)).getPrivateKey(AGENCY_CA_KEY))!))
      for (const e of [e1, e2]) secrets.push(...privateParts(`escrow ${e.index}`, (await (await unlock(e)).getPrivateKey(ESCROW_KEY))!))
      const content = decodeContentKey((await (await unlock(seller)).get(contentKeyName(published.content)))!)
      secrets.push({ name: 'content key K', bytes: content.key })
      const device = await new KeyStore(join(buyer.repo, 'device')).open(Buffer.from(PASSPHRASE))
      secrets.push(...privateParts('device signing', device.signingKey), ...privateParts('device encryption', device.encryptionKey))
      assert.equal(secrets.length, 3 * 3 + 1 + 3 * 2)

      const repos = swarm.nodes.map(n => n.repo)
      const files = (await Promise.all(repos.map(filesUnder))).flat()
      assert.ok(files.some(f => f.endsWith('ledger.db')) && files.some(f => f.endsWith('.kf')) && files.some(f => f.includes('/licence/')), 'the scan covers ledgers, ciphertext and licences')
      assert.deepEqual(await scan(repos, secrets), [])

      // the scanner finds what it looks for: a copy of the seller's repo with keys planted in clear
      const scratch = join(dir, 'planted')
      await cp(seller.repo, scratch, { recursive: true })
      const agencyKey = (await (await unlock(agency)).getPrivateKey(AGENCY_CA_KEY))!
      await writeFile(join(scratch, 'ca.pem'), agencyKey.export({ type: 'pkcs8', format: 'pem' }))
      await writeFile(join(scratch, 'escrow.der'), (await (await unlock(e1)).getPrivateKey(ESCROW_KEY))!.export({ type: 'pkcs1', format: 'der' }))
      await writeFile(join(scratch, 'note.json'), JSON.stringify({ k: Buffer.from(content.key).toString('hex') }))
      await writeFile(join(scratch, 'b64.txt'), `key = ${agencyKey.export({ type: 'pkcs8', format: 'der' }).toString('base64')}\n`)
      await writeFile(join(scratch, 'blob.bin'), Buffer.concat([randomBytes(100), Buffer.from(secrets[0]!.bytes), randomBytes(100)]))
      const planted = await scan([scratch], secrets)
      const what = (file: string): string[] => planted.filter(f => f.file === file).map(f => f.what)
      assert.ok(what('ca.pem').includes('PEM private key'), JSON.stringify(planted))
      assert.ok(what('escrow.der').includes('DER private key (whole file)'), JSON.stringify(planted))
      assert.ok(what('note.json').includes('content key K (hex)'), JSON.stringify(planted))
      assert.ok(what('b64.txt').includes('base64 private key') && what('b64.txt').includes('agency CA d (base64)'), JSON.stringify(planted))
      assert.ok(what('blob.bin').includes('agency CA d (raw)'), JSON.stringify(planted))
      assert.deepEqual(new Set(planted.map(f => f.file)), new Set(['ca.pem', 'escrow.der', 'note.json', 'b64.txt', 'blob.bin']), 'nothing else in the copy')
    })
  })
})
