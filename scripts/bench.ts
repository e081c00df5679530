/**
 * `npm run bench [-- --quick]`: every figure is a ratio against a baseline
 * measured in the same run (absolute times on shared 2-core machines are
 * noise). Prints a table and writes .bench/results-<time>.json.
 *
 * Rows so far (the marketplace rows P1–P6 of the bench issue come with it;
 * rows without a target are informational until an issue sets one):
 *   F1 framed DATA transfer vs a raw libp2p stream moving the same bytes
 *   C1 content encryption (chunked AES-256-GCM + manifest) vs raw node:crypto AES-256-GCM
 *   C2 content decryption (hash check + GCM, in order) vs raw node:crypto AES-256-GCM
 *   C3 one blind → escrow private op → unblind → check round vs one raw RSA private op, 3072 bits
 *   E1 escrow unblind requests/s in-process (checks, d_T op, signed answer, commit) vs raw private ops/s, 3072 bits
 *   D1 keyword search (Discovery, 20 nodes) vs bare kad-dht findProviders of the same CID
 */
import { createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, constants as cryptoConstants, randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { logger } from '@libp2p/logger'
import {
  blind, checkUnblinded, decryptContent, encryptContent, escrowKeyForTerms, generateContentSecrets,
  i2ospMod, priceExponent, rawPrivate, rawPublic, rsaPrivateParams, unblind
} from '../device/crypto/index.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeObject, encodeObject } from '../device/objects/codec.ts'
import { contentIdOf, parseSignedUnblindRequest } from '../device/objects/market.ts'
import { signWithPeerKey, signedId, verifyDeviceSigned, verifyPeerSigned } from '../device/objects/signed.ts'
import { DEVICE_UNIT, TrustStore, inspectCsr } from '../device/pki/index.ts'
import { certificateSubject, decodePem } from '../device/pki/der.ts'
import { SoftDevice } from '../device/soft-device.ts'
import { KeyStore } from '../device/store/keystore.ts'
import { buildCrl, createRootCertificate, issueCertificate, keyIdentifierOf } from '../node/agency/x509.ts'
import { Escrow } from '../node/escrow/escrow.ts'
import { Ledger } from '../node/escrow/ledger.ts'
import { EscrowKey } from '../node/escrow/unblind.ts'
import { createOffer } from '../node/seller/offers.ts'
import { AnnouncementStore, announcementMigrations } from '../node/discovery/announcements.ts'
import { Discovery } from '../node/discovery/discovery.ts'
import { keywordCid } from '../node/discovery/keywords.ts'
import { createKeyfairLibp2p } from '../node/libp2p.ts'
import { openDatabase } from '../node/store/database.ts'
import { FrameStream, serveFrames } from '../protocols/toolkit/index.ts'
import type { BaseServices } from '../node/libp2p.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

interface Row {
  id: string
  measures: string
  unit: string
  value: number
  baseline: number
  /** value / baseline */
  ratio: number
  /** '' for informational rows whose target no issue has set yet */
  target: string
  pass: boolean | undefined
  samples: { value: number[], baseline: number[] }
}

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, out: { type: 'string', default: '.bench' } } })
const quick = args.quick
const REPEATS = quick ? 3 : 7
const MiB = 1024 * 1024

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? 0 }
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`

/** Alternates baseline and subject runs so drift in machine load hits both alike. */
async function paired (runs: number, subject: () => Promise<number>, baseline: () => Promise<number>): Promise<{ value: number[], baseline: number[] }> {
  const out = { value: [] as number[], baseline: [] as number[] }
  for (let i = 0; i < runs; i++) {
    out.baseline.push(await baseline())
    out.value.push(await subject())
  }
  return out
}

function row (id: string, measures: string, unit: string, samples: { value: number[], baseline: number[] }, higherIsBetter: boolean, target?: number): Row {
  const value = median(samples.value)
  const base = median(samples.baseline)
  const ratio = value / base
  if (target == null) return { id, measures, unit, value, baseline: base, ratio, target: '', pass: undefined, samples }
  const pass = higherIsBetter ? ratio >= target : ratio <= target
  return { id, measures, unit, value, baseline: base, ratio, target: `${higherIsBetter ? '≥' : '≤'} ${target}×`, pass, samples }
}

async function node (): Promise<Libp2p<BaseServices>> {
  const n = await createKeyfairLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], services: {} })
  await n.start()
  return n
}

/** F1: MB/s through FrameStream DATA frames vs raw stream.send with the same chunk size. */
async function benchFrames (): Promise<Row> {
  const total = (quick ? 32 : 128) * MiB
  const chunk = new Uint8Array(256 * 1024)
  const [a, b] = [await node(), await node()]
  const limits = { maxFrameBytes: chunk.byteLength + 16, readTimeoutMs: 10_000 }
  const received = { done: Promise.withResolvers<void>() }
  await b.handle('/bench/raw/1.0.0', async (stream: Stream) => {
    let n = 0
    for await (const buf of stream) n += buf.byteLength
    if (n !== total) throw new Error(`raw: got ${n}`)
    received.done.resolve()
    await stream.close()
  })
  await b.handle('/bench/framed/1.0.0', serveFrames(logger('keyfair:bench'), limits, async frames => {
    let n = 0
    while (n < total) n += (await frames.readData()).byteLength
    await frames.writeMessage({ n })
  }))
  const mbps = (ms: number): number => total / MiB / (ms / 1000)
  const raw = async (): Promise<number> => {
    received.done = Promise.withResolvers<void>()
    const t0 = performance.now()
    const s = await a.dialProtocol(b.getMultiaddrs(), '/bench/raw/1.0.0')
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      if (!s.send(chunk)) await s.onDrain({ signal: AbortSignal.timeout(10_000) })
    }
    await s.close()
    await received.done.promise
    return mbps(performance.now() - t0)
  }
  const framed = async (): Promise<number> => {
    const t0 = performance.now()
    const frames = new FrameStream(await a.dialProtocol(b.getMultiaddrs(), '/bench/framed/1.0.0'), limits)
    for (let sent = 0; sent < total; sent += chunk.byteLength) await frames.writeData(chunk)
    await frames.readMessage()
    await frames.stream.close()
    return mbps(performance.now() - t0)
  }
  try {
    return row('F1', `framed transfer, ${total / MiB} MiB in 256 KiB frames`, 'MB/s', await paired(REPEATS, framed, raw), true, 0.85)
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
}

/** C1/C2: MB/s of the content format vs raw AES-256-GCM over the same chunks. */
async function benchContent (): Promise<Row[]> {
  const size = (quick ? 64 : 256) * MiB
  const chunkSize = MiB
  const secrets = generateContentSecrets()
  const block = randomBytes(chunkSize)
  async function * plaintext (): AsyncGenerator<Uint8Array> { for (let i = 0; i < size / chunkSize; i++) yield block }
  const mbps = (ms: number): number => size / MiB / (ms / 1000)
  const iv = randomBytes(12)
  const rawEncrypt = async (): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < size / chunkSize; i++) {
      const c = createCipheriv('aes-256-gcm', secrets.key, iv)
      c.update(block); c.final(); c.getAuthTag()
    }
    return mbps(performance.now() - t0)
  }
  let stored: Array<{ index: number, data: Uint8Array }> = []
  let manifest: any
  const encrypt = async (): Promise<number> => {
    const t0 = performance.now()
    const enc = encryptContent(plaintext(), { ...secrets, chunkSize })
    const chunks: Array<{ index: number, data: Uint8Array }> = []
    for await (const c of enc) chunks.push({ index: c.index, data: c.data })
    const ms = performance.now() - t0
    stored = chunks
    manifest = enc.manifest()
    return mbps(ms)
  }
  const encRow = row('C1', `content encrypt, ${size / MiB} MiB in 1 MiB chunks`, 'MB/s', await paired(REPEATS, encrypt, rawEncrypt), true)
  const cipher = createCipheriv('aes-256-gcm', secrets.key, iv)
  const sealed = Buffer.concat([cipher.update(block), cipher.final()])
  const tag = cipher.getAuthTag()
  const rawDecrypt = async (): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < size / chunkSize; i++) {
      const d = createDecipheriv('aes-256-gcm', secrets.key, iv)
      d.setAuthTag(tag)
      d.update(sealed)
      d.final()
    }
    return mbps(performance.now() - t0)
  }
  const decrypt = async (): Promise<number> => {
    const t0 = performance.now()
    let n = 0
    for await (const p of decryptContent(stored, manifest, secrets.key)) n += p.byteLength
    if (n !== size) throw new Error('decrypt size')
    return mbps(performance.now() - t0)
  }
  const decRow = row('C2', `content decrypt + verify, ${size / MiB} MiB`, 'MB/s', await paired(REPEATS, decrypt, rawDecrypt), true)
  stored = []
  return [encRow, decRow]
}

/** C3: ms per blind round at 3072 bits vs one raw private op with the ordinary key. */
async function benchBlind (): Promise<Row> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 })
  const params = rsaPrivateParams(privateKey)
  const eT = priceExponent(randomBytes(36))
  const escrowKey = escrowKeyForTerms(params, eT)
  const rounds = quick ? 20 : 100
  const x = BigInt('0x' + randomBytes(300).toString('hex')) % params.n
  const c = rawPublic(x, eT, params.n)
  const input = i2ospMod(BigInt('0x' + randomBytes(300).toString('hex')) % params.n, params.n)
  const rawOp = async (): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < rounds; i++) privateDecrypt({ key: privateKey, padding: cryptoConstants.RSA_NO_PADDING }, input)
    return (performance.now() - t0) / rounds
  }
  const round = async (): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < rounds; i++) {
      const { b, r } = blind(c, eT, params.n)
      const z = rawPrivate(escrowKey, b, params.n)
      checkUnblinded(unblind(z, r, params.n), c, eT, params.n)
    }
    return (performance.now() - t0) / rounds
  }
  return row('C3', 'blind + private op + unblind + check, 3072-bit', 'ms/round', await paired(REPEATS, round, rawOp), false)
}

/** D1: ms for a keyword search through Discovery vs kad-dht findProviders, 20 in-process nodes. */
async function benchSearch (): Promise<Row> {
  const count = quick ? 10 : 20
  const nodes: Array<Libp2p<any>> = []
  const dbs: any[] = []
  const { mkdtemp, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-bench-'))
  try {
    for (let i = 0; i < count; i++) {
      const db = openDatabase(join(dir, `n${i}.db`), announcementMigrations)
      dbs.push(db)
      const n = await createKeyfairLibp2p<any>({
        privateKey: await generateKeyPair('Ed25519'),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: i === 0 ? [] : [nodes[0]!.getMultiaddrs()[0]!.toString()],
        services: { discovery: (components: any) => new Discovery(components, { store: new AnnouncementStore(db) }) }
      })
      await n.start()
      nodes.push(n)
    }
    const deadline = Date.now() + 30_000
    while (nodes.some(n => (n.services.dht as any).routingTable.size < 3) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
    const provider = nodes[count - 1]!
    const seeker = nodes[1]!
    await provider.services.discovery.announce('bafkreia72fyadnv6uypovhb63cxbhsnalxplztghyhsjwjlhzglmrf5pom', ['benchmark'])
    const cid = keywordCid('benchmark')
    const bare = async (): Promise<number> => {
      const t0 = performance.now()
      for await (const p of seeker.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(10_000) })) {
        if (p.id.equals(provider.peerId)) break
      }
      return performance.now() - t0
    }
    const search = async (): Promise<number> => {
      const t0 = performance.now()
      for await (const p of seeker.services.discovery.findKeyword('Benchmark', { limit: 1, timeoutMs: 10_000 })) {
        if (p.peerId !== provider.peerId.toString()) throw new Error('wrong provider')
      }
      return performance.now() - t0
    }
    return row('D1', `keyword search, ${count} nodes`, 'ms', await paired(REPEATS, search, bare), false, 1.5)
  } finally {
    await Promise.all(nodes.map(async n => n.stop()))
    for (const db of dbs) db.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * E1: escrow unblind requests/s in-process at 3072 bits (device certificate + PSS check,
 * offer signature, rules, d_T private op, signed answer, hold committed with fsync) vs raw
 * node:crypto private ops/s with the same key size. Prints where the time goes.
 */
async function benchEscrow (): Promise<Row> {
  const { mkdtemp, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-bench-escrow-'))
  const batch = quick ? 20 : 100
  const repeats = quick ? 2 : 3
  const ledger = Ledger.open(join(dir, 'ledger.db'))
  try {
    // an agency root, and a device it certified
    const root = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) }
    const rootPem = createRootCertificate(root.privateKey, root.publicKey, { commonName: 'bench agency' }, validity)
    const issuer = { privateKey: root.privateKey, subject: certificateSubject(decodePem(rootPem, 'CERTIFICATE')!), keyIdentifier: keyIdentifierOf(root.publicKey) }
    const device = new SoftDevice({ store: new KeyStore(join(dir, 'device')) })
    await device.initialise({ passphrase: 'bench passphrase', bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })
    const csrs = await device.certificateRequests()
    const names = { commonName: csrs.deviceId, organizationalUnit: DEVICE_UNIT }
    await device.installCertificates({
      signing: issueCertificate(issuer, inspectCsr(csrs.signing).publicKey, names, 'device-signing', validity),
      encryption: issueCertificate(issuer, inspectCsr(csrs.encryption).publicKey, names, 'device-encryption', validity),
      root: rootPem
    })
    const trust = new TrustStore(rootPem)
    trust.setCrl(buildCrl(issuer, { number: 1, thisUpdate: new Date(Date.now() - 1000), nextUpdate: new Date(Date.now() + 3_600_000), revoked: [] }))
    // the escrow, a seller and an offer naming the escrow
    const { privateKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 3072 })
    const key = new EscrowKey(rsa)
    const escrowPeerKey = await generateKeyPair('Ed25519')
    const sellerKey = await generateKeyPair('Ed25519')
    const buyer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const escrow = new Escrow({ peerId: peerIdFromPrivateKey(escrowPeerKey).toString(), privateKey: escrowPeerKey, key, ledger, log: logger('keyfair:bench:escrow'), currency: 'EUR' })
    escrow.setCredentials({ certificate: '', root: rootPem, trust })
    ledger.deposit(buyer, 1_000_000)
    const secrets = generateContentSecrets()
    const encryption = encryptContent([new Uint8Array(1000)], secrets)
    for await (const _ of encryption) {}
    const manifest = encryption.manifest()
    const offer = await createOffer({
      sellerKey,
      terms: { content: contentIdOf(manifest), price: 1, currency: 'EUR', escrows: [{ peer: escrow.peerId, n: key.modulus }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 'bench', tags: [], key: secrets.key, contentSalt: secrets.salt, open: true
    })
    const offerBytes = encodeObject(offer)
    const manifestBytes = encodeObject(manifest)
    const requests = async (count: number): Promise<unknown[]> => {
      const out: unknown[] = []
      for (let i = 0; i < count; i++) {
        const p = await device.beginPurchase({ offer: offerBytes, manifest: manifestBytes, buyer })
        out.push(decodeObject((await device.requestShare({ purchase: p.purchase, j: 1 })).request))
      }
      return out
    }
    const input = i2ospMod(BigInt('0x' + randomBytes(300).toString('hex')) % key.n, key.n)
    const raw = async (): Promise<number> => {
      const t0 = performance.now()
      for (let i = 0; i < batch; i++) privateDecrypt({ key: rsa, padding: cryptoConstants.RSA_NO_PADDING }, input)
      return batch / ((performance.now() - t0) / 1000)
    }
    const pending = await requests(batch * repeats + 20)
    const unblind = async (): Promise<number> => {
      const mine = pending.splice(0, batch)
      const t0 = performance.now()
      for (const request of mine) await escrow.unblind(request, buyer)
      return batch / ((performance.now() - t0) / 1000)
    }
    const samples = await paired(repeats, unblind, raw)
    // where the time goes, on the 20 requests left
    const rest = pending.map(r => parseSignedUnblindRequest(r))
    const time = async (f: (r: (typeof rest)[number]) => unknown): Promise<number> => {
      const t0 = performance.now()
      for (const r of rest) await f(r)
      return (performance.now() - t0) / rest.length
    }
    const parts = {
      deviceCheck: await time(r => verifyDeviceSigned(r, 'unblind-request', der => trust.verify(der, { purpose: 'device-signing' }))),
      offerCheck: await time(async r => verifyPeerSigned(r.body.offer, 'offer')),
      privateOp: await time(r => key.unblind(r.body.b, r.body.offer.body.terms)),
      signAnswer: await time(async r => signWithPeerKey('unblind-answer', { v: 1, request: signedId(r), purchase: r.body.purchase, j: 1, z: r.body.b, hold: 'x' }, escrowPeerKey)),
      ledgerCommit: await time(() => { ledger.deposit(buyer, 1) })
    }
    process.stderr.write(`bench: E1 per request (ms): ${Object.entries(parts).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}\n`)
    const result = row('E1', 'escrow unblind, in-process, 3072-bit, with checks and commit', 'req/s', samples, true)
    return { ...result, breakdownMs: parts } as Row
  } finally {
    ledger.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const started = Date.now()
const rows: Row[] = []
for (const bench of [benchFrames, benchContent, benchBlind, benchEscrow, benchSearch]) {
  const result = await bench()
  rows.push(...(Array.isArray(result) ? result : [result]))
  const last = rows.at(-1)!
  process.stderr.write(`bench: ${last.id} done (${Math.round((Date.now() - started) / 1000)} s)\n`)
}

const table = [
  ['id', 'measures', 'value', 'baseline', 'ratio', 'target', 'result', 'spread (value)'],
  ...rows.map(r => [r.id, r.measures, `${r.value.toFixed(2)} ${r.unit}`, `${r.baseline.toFixed(2)} ${r.unit}`, `${r.ratio.toFixed(2)}×`, r.target || '—', r.pass == null ? 'info' : r.pass ? 'pass' : 'MISS', spread(r.samples.value)])
]
const widths = table[0]!.map((_, i) => Math.max(...table.map(line => line[i]!.length)))
for (const line of table) process.stdout.write(line.map((cell, i) => cell.padEnd(widths[i]!)).join('  ') + '\n')
await mkdir(args.out, { recursive: true })
const file = `${args.out}/results-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
await writeFile(file, JSON.stringify({ quick, repeats: REPEATS, node: process.version, rows }, null, 2))
process.stdout.write(`\n${rows.length} rows, ${REPEATS} paired repeats each, ${Math.round((Date.now() - started) / 1000)} s; results in ${file}\n`)
