/**
 * The marketplace rows of `npm run bench` (P1, P1c, P3, P4, P5, P6), over one local swarm of
 * real keyfair node processes driven through their control APIs: an agency, 5 escrows,
 * a seller, 2 seeders, a buyer, a second buyer kept fresh for the memory row, and plain
 * nodes that fill the DHT to the swarm size P6 asks for. Baselines run in the same run:
 * raw libp2p transfers between two bare processes of the same stack (raw-peer.ts), a
 * 1-of-1 purchase, a download from one provider, a bare DHT query.
 */
import { fork } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { roleNodeFlags } from '../../node/config.ts'
import { Swarm } from '../swarm.ts'
import { childrenOf, cpuMeter, peakRss, resetPeakRss, rss } from './proc.ts'
import { manyCores, median, paired, row } from './report.ts'
import type { Row } from './report.ts'
import type { BuyRequest } from '../../node/control/api.ts'
import type { ProcessMemory } from '../../node/gc-monitor.ts'
import type { SwarmNode } from '../swarm.ts'
import type { ChildProcess } from 'node:child_process'
import type { BuyResult } from '../../node/buyer/buyer.ts'

const RAW_PEER = fileURLToPath(new URL('./raw-peer.ts', import.meta.url))
/** long enough for V8's memory reducer to shrink an idle heap (it starts after 8 s quiet); 1 s in a quick run */
const RAW_IDLE_MS = 20_000
const PASSPHRASE = 'bench device passphrase'
const MiB = 1024 * 1024
const LONG = { timeoutMs: 30 * 60_000 }
/** P5 reads the buyer node's memory again this long after its purchase (V8 shrinks an idle heap within seconds, where it does) */
const AFTER_IDLE_MS = 15_000

export interface MarketBenchOptions {
  quick: boolean
  log: (line: string) => void
  /** rows to run (all when not given) */
  only?: string[]
  /** swarm size (default 50, 12 in a quick run) */
  nodes?: number
}

interface Work { content: string, offer: string, size: number }

/** A buy's answer, as much of it as the bench reads */
type Bought = Pick<BuyResult, 'purchase' | 'bytes' | 'escrows' | 'timings' | 'dropped' | 'sources'>

export async function benchMarket (options: MarketBenchOptions): Promise<Row[]> {
  const { quick, log } = options
  const wanted = (id: string): boolean => options.only == null || options.only.includes(id)
  const sizes = quick
    ? { transfer: 32 * MiB, memory: 64 * MiB, nodes: 12, repeats: 3, latencyRepeats: 5, idleMs: 1000 }
    : { transfer: 256 * MiB, memory: 1024 * MiB, nodes: 50, repeats: 5, latencyRepeats: 15, idleMs: RAW_IDLE_MS }
  if (options.nodes != null) sizes.nodes = options.nodes
  // smaller keys only in the smoke run: key generation is most of a quick run's setup
  const bits = quick ? '2048' : '3072'
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-bench-market-'))
  const roles = {
    agency: 0,
    escrows: [1, 2, 3, 4, 5],
    seller: 6,
    seeders: [7, 8],
    buyer: 9,
    fresh: 10
  }
  const specs = [
    { roles: ['agency'], prepare: [['agency', 'init', '--bits', bits]] },
    ...roles.escrows.map(() => ({ roles: ['escrow'], prepare: [['escrow', 'init', '--bits', bits]] })),
    { roles: ['seller'] },
    ...roles.seeders.map(() => ({ roles: ['buyer'] })),
    { roles: ['buyer'] },
    { roles: ['buyer'] },
    ...Array.from({ length: sizes.nodes - 11 }, () => ({ roles: ['buyer'] }))
  ]
  log(`market: starting ${specs.length} node processes`)
  const swarm = await Swarm.start({ nodes: specs, topology: 'star', minRoutingTable: 3, readyTimeoutMs: 180_000, env: { KEYFAIR_PASSPHRASE: PASSPHRASE }, onProgress: m => { log(`market: ${m}`) } })
  const raw: ChildProcess[] = []
  try {
    const node = (i: number): SwarmNode => swarm.nodes[i]!
    const agency = node(roles.agency)
    const agencyAddr = agency.addresses[0]!
    const escrows = roles.escrows.map(node)
    const seller = node(roles.seller)
    const buyer = node(roles.buyer)
    const fresh = node(roles.fresh)

    await Promise.all(escrows.map(async e => {
      const { code } = await agency.client.call('agency.enrollCode', { kind: 'escrow' })
      await e.client.call('escrow.enroll', { agency: agencyAddr, code }, LONG)
    }))
    await seller.client.call('trust', { agency: agencyAddr })
    for (const b of [buyer, fresh]) {
      await b.client.call('device.init', { passphrase: PASSPHRASE, bits: Number(bits) }, LONG)
      const { code } = await agency.client.call('agency.enrollCode', { kind: 'device' })
      await b.client.call('device.enroll', { agency: agencyAddr, code }, LONG)
      await Promise.all(escrows.map(async e => e.client.call('escrow.deposit', { account: b.peerId, amount: 1_000_000_000 })))
    }
    log('market: escrows and devices enrolled, buyers funded')

    const publish = async (name: string, size: number, t: number, n: number, tags: string[]): Promise<Work> => {
      const file = join(dir, name)
      await writeRandomFile(file, size)
      const published = await seller.client.call('publish', {
        file, title: name, tags, price: 1, t, n, escrows: escrows.slice(0, n).map(e => e.peerId)
      }, LONG)
      await rm(file)
      return { content: published.content, offer: published.offer, size }
    }
    // only the works the asked rows use (P6 searches for the transfer work)
    const transferWork = await publish('transfer', sizes.transfer, 1, 1, ['benchtransfer'])
    const latency = wanted('P3')
      ? { oneOfOne: await publish('latency-1-of-1', 64 * 1024, 1, 1, ['benchlatency']), threeOfFive: await publish('latency-3-of-5', 64 * 1024, 3, 5, ['benchlatency']) }
      : undefined
    const memoryWork = wanted('P5') ? await publish('memory', sizes.memory, 1, 1, ['benchmemory']) : undefined
    const seeders = roles.seeders.map(node)
    if (wanted('P4')) {
      // the seeders take the transfer work from portable media and announce it
      const media = join(dir, 'media')
      await seller.client.call('export', { content: transferWork.content, path: media }, LONG)
      for (const s of seeders) await s.client.call('import', { path: media, seed: true }, LONG)
      await rm(media, { recursive: true, force: true })
    }
    // buyers learn offers by searching, as users do
    const find = async (b: SwarmNode, word: string, works: Work[]): Promise<void> => {
      const { offers } = await b.client.call('search', { words: [word] }, LONG)
      for (const w of works) if (!offers.some((o: any) => o.offer === w.offer)) throw new Error(`search '${word}' did not find ${w.offer}`)
    }
    await find(buyer, 'benchtransfer', [transferWork])
    if (latency != null) await find(buyer, 'benchlatency', [latency.oneOfOne, latency.threeOfFive])
    if (memoryWork != null) await find(fresh, 'benchmemory', [memoryWork])
    log(`market: published a ${sizes.transfer / MiB} MiB work${latency != null ? ', 2 × 64 KiB' : ''}${memoryWork != null ? `, ${sizes.memory / MiB} MiB` : ''}${wanted('P4') ? '; 3 providers of the first' : ''}`)

    const buy = async (b: SwarmNode, work: Work, body: Omit<BuyRequest, 'offer'> = {}): Promise<Bought> => {
      // every run downloads again: the previous copy is removed first
      await b.client.call('remove', { content: work.content }).catch((err: any) => { if (err.code !== 'ERR_UNKNOWN_CONTENT') throw err })
      const result = await b.client.call('buy', { offer: work.offer, ...body }, LONG)
      if (result.escrows.filter(e => e.outcome === 'accepted').length === 0) throw new Error('bench purchase released no share')
      return result
    }

    // P1: buy + download + decrypt + verify from one provider vs a raw libp2p stream
    const server = await startRawPeer(['--serve'], raw)
    const rawAddress = (server.first.addresses as string[])[0]!
    // CPU per process per run: where a purchase's work goes, against what the raw stream costs
    const rawCpu: Array<Record<string, number>> = []
    const rawCollections: number[] = []
    const rawFetch = async (): Promise<number> => {
      const spent = await cpuMeter({ server: server.pid })
      const fetcher = await startRawPeer(['--fetch', rawAddress, '--bytes', String(transferWork.size)], raw)
      const ms = fetcher.first.ms as number
      await fetcher.exited
      rawCpu.push({ ...await spent(), fetcher: fetcher.first.cpuMs as number })
      rawCollections.push(fetcher.first.fullCollections as number)
      return transferWork.size / MiB / (ms / 1000)
    }
    // the same fetcher twice in one process, the second time after an idle spell as a node
    // has between purchases: what V8's state after idling costs the bare stream
    const rawFetchAfterIdle = async (): Promise<Record<'fresh' | 'afterIdle', { cpuMs: number, fullCollections: number }>> => {
      const fetcher = await startRawPeer(['--fetch', rawAddress, '--bytes', String(transferWork.size), '--repeat', '2', '--idle-ms', String(sizes.idleMs)], raw)
      await fetcher.exited
      const [fresh, afterIdle] = fetcher.events.map(e => ({ cpuMs: Math.round(e.cpuMs as number), fullCollections: e.fullCollections as number }))
      if (fresh == null || afterIdle == null) throw new Error('the raw fetcher reported fewer than two fetches')
      return { fresh, afterIdle }
    }
    const output = join(dir, 'played')
    const p1Timings: Bought['timings'][] = []
    const p1Cpu: Array<Record<string, number>> = []
    const p1Collections: Array<Record<'buyer' | 'seller', { full: number, young: number, pausedMs: number }>> = []
    const collectionsOf = async (nodes: Record<'buyer' | 'seller', SwarmNode>): Promise<() => Promise<(typeof p1Collections)[number]>> => {
      const memoryOf = async (n: SwarmNode): Promise<ProcessMemory> => (await n.client.call('status')).memory
      const before = { buyer: await memoryOf(nodes.buyer), seller: await memoryOf(nodes.seller) }
      const since = (a: ProcessMemory, b: ProcessMemory): { full: number, young: number, pausedMs: number } => ({ full: b.fullCollections - a.fullCollections, young: b.youngCollections - a.youngCollections, pausedMs: b.collectionMs - a.collectionMs })
      return async () => ({ buyer: since(before.buyer, await memoryOf(nodes.buyer)), seller: since(before.seller, await memoryOf(nodes.seller)) })
    }
    const buyAndPlay = async (): Promise<number> => {
      const [device] = await childrenOf(buyer.pid)
      // the buyer's main thread runs libp2p: on many cores, its CPU per byte bounds the rate
      const spent = await cpuMeter({ buyer: buyer.pid, buyerMainThread: { pid: buyer.pid, thread: buyer.pid }, ...(device != null ? { device } : {}), seller: seller.pid })
      const collected = await collectionsOf({ buyer, seller })
      const t0 = performance.now()
      const r = await buy(buyer, transferWork, { output, from: [seller.peerId] })
      const ms = performance.now() - t0
      p1Cpu.push(await spent())
      p1Collections.push(await collected())
      if (r.bytes !== transferWork.size || (await stat(output)).size !== transferWork.size) throw new Error('the played output has the wrong size')
      await rm(output)
      p1Timings.push(r.timings)
      return transferWork.size / MiB / (ms / 1000)
    }
    const rows: Row[] = []
    if (wanted('P1')) {
      const samples = await paired(sizes.repeats, buyAndPlay, rawFetch, (i, v, b) => {
        const c = p1Collections[i]
        const cpu = p1Cpu[i]
        log(`market: P1 run ${i + 1}: ${v.toFixed(0)} vs raw ${b.toFixed(0)} MB/s; buyer CPU ${cpu?.buyer} ms (main thread ${cpu?.buyerMainThread}); full collections: buyer ${c?.buyer.full}, provider ${c?.seller.full}, raw fetcher ${rawCollections[i]}`)
      })
      const rawAfterIdle = await rawFetchAfterIdle()
      log(`market: P1 raw stream after ${sizes.idleMs / 1000} s idle: ${rawAfterIdle.afterIdle.cpuMs} ms CPU, ${rawAfterIdle.afterIdle.fullCollections} full collections (fresh: ${rawAfterIdle.fresh.cpuMs} ms, ${rawAfterIdle.fresh.fullCollections})`)
      rows.push(row({
        id: 'P1',
        measures: `buy + download + decrypt + verify ${sizes.transfer / MiB} MiB, 1 provider`,
        unit: 'MB/s',
        samples,
        higherIsBetter: true,
        target: 0.85,
        details: { timingsMs: p1Timings, cpuMsPerRun: { purchase: medianOf(p1Cpu), raw: medianOf(rawCpu) }, collectionsPerRun: p1Collections, rawFullCollections: rawCollections, rawAfterIdle }
      }))
    }
    // P1c: the same runs' CPU: what the buyer's node spends on the bytes against what the raw
    // fetcher spends on as many (the measure that holds where the processes share few cores)
    if (wanted('P1') && p1Cpu.every(c => c.buyer != null)) rows.push(row({
      id: 'P1c',
      measures: `buyer node CPU for ${sizes.transfer / MiB} MiB bought (P1) vs the raw fetcher's`,
      unit: 'ms',
      samples: { value: p1Cpu.map(c => c.buyer!), baseline: rawCpu.map(c => c.fetcher!) },
      higherIsBetter: false,
      target: 1.6
    }))

    // P4: the same download from 3 providers vs from 1
    const fromAll = [seller.peerId, ...seeders.map(s => s.peerId)]
    // each run's rate, what each provider delivered and whether it ended rested, and any
    // provider dropped (a slow run is then explained)
    const p4Runs: Array<{ providers: number, mbps: number, dropped: Bought['dropped'], sources: Array<{ provider: string, MiB: number, rested: boolean }> }> = []
    const download = async (from: string[]): Promise<number> => {
      const r = await buy(buyer, transferWork, { from })
      const mbps = transferWork.size / MiB / (r.timings.download / 1000)
      const sources = r.sources.map(s => ({ provider: s.provider.slice(-6), MiB: Math.round(s.bytes / MiB), rested: s.rested }))
      p4Runs.push({ providers: from.length, mbps: Math.round(mbps), dropped: r.dropped, sources })
      return mbps
    }
    if (wanted('P4')) rows.push(row({
      id: 'P4',
      measures: `download ${sizes.transfer / MiB} MiB, 3 providers vs 1`,
      unit: 'MB/s',
      samples: await paired(sizes.repeats, async () => download(fromAll), async () => download([seller.peerId]), (i, v, b) => { log(`market: P4 run ${i + 1}: ${v.toFixed(0)} vs ${b.toFixed(0)} MB/s`) }),
      higherIsBetter: true,
      // three providers can only beat one where there are cores for them to be served and received
      target: manyCores() ? 1.2 : 0.95,
      details: { runs: p4Runs }
    }))
    await buyer.client.call('remove', { content: transferWork.content }).catch(() => {})

    // P3: key release of a 3-of-5 purchase vs a 1-of-1 (the ciphertext is on disk after the first)
    // where each key release's time went: every step as of its last share, and the rebuild
    const steps: Record<'value' | 'baseline', Array<Record<string, number>>> = { value: [], baseline: [] }
    // CPU per process over each whole purchase (/proc counts in 10 ms ticks: read the mean of many)
    const purchaseCpu: Record<'value' | 'baseline', Array<Record<string, number>>> = { value: [], baseline: [] }
    const release = async (work: Work, into?: 'value' | 'baseline'): Promise<number> => {
      const [device] = await childrenOf(buyer.pid)
      const spent = await cpuMeter({ buyer: buyer.pid, ...(device != null ? { device } : {}), seller: seller.pid, ...Object.fromEntries(escrows.map((e, i) => [`escrow${i + 1}`, e.pid])) })
      const { timings } = await buyer.client.call('buy', { offer: work.offer }, LONG)
      if (into != null) purchaseCpu[into].push(await spent())
      const last = (step: 'checked' | 'requested' | 'answered' | 'judged'): number => Math.max(...(timings.shares ?? []).map(s => s[step] ?? 0))
      if (into != null) steps[into].push({ checked: last('checked'), requested: last('requested'), answered: last('answered'), judged: last('judged'), rebuild: timings.rebuild, keyRelease: timings.keyRelease, licence: timings.licence, total: timings.total })
      return timings.keyRelease
    }
    if (latency != null) {
      const { oneOfOne, threeOfFive } = latency
      // one unmeasured purchase of each first: the ciphertext comes to disk, connections open
      await release(oneOfOne)
      await release(threeOfFive)
      rows.push(row({
        id: 'P3',
        measures: 'key release latency, 3-of-5 vs 1-of-1',
        unit: 'ms',
        samples: await paired(sizes.latencyRepeats, async () => release(threeOfFive, 'value'), async () => release(oneOfOne, 'baseline')),
        higherIsBetter: false,
        target: 1.3,
        details: {
          stepsMs: { threeOfFive: medianOf(steps.value), oneOfOne: medianOf(steps.baseline) },
          cpuMsPerPurchase: { threeOfFive: meanOf(purchaseCpu.value), oneOfOne: meanOf(purchaseCpu.baseline) }
        }
      }))
    }

    // P5: peak RSS of the buyer's node process and of its sealed device process while
    // buying and playing; the peaks are reset first, so unlocking the device (scrypt's
    // 128 MiB) and starting up are not counted. The row's value is the larger process.
    if (memoryWork != null) {
      await resetPeakRss(fresh.pid)
      const idle = await peakRss(fresh.pid)
      await fresh.client.call('buy', { offer: memoryWork.offer, output }, LONG)
      const played = (await stat(output)).size
      await rm(output)
      if (played !== memoryWork.size) throw new Error('the memory run played the wrong size')
      const peaks = await peakRss(fresh.pid)
      // what the node keeps once it has been idle a while after the purchase
      await sleep(AFTER_IDLE_MS)
      const idleAfter = await rss(fresh.pid)
      rows.push(row({
        id: 'P5',
        measures: `buyer peak RSS, buying + playing ${sizes.memory / MiB} MiB (larger of node, device)`,
        unit: 'MB',
        samples: { value: [Math.max(peaks.node, peaks.children)], baseline: [] },
        higherIsBetter: false,
        target: 160,
        absolute: true,
        also: { text: 'idle node ≤ 120 MB', holds: idle.node <= 120 },
        details: { peakMB: peaks, beforeBuyingMB: idle, nodeMBIdleAfter: { seconds: AFTER_IDLE_MS / 1000, node: idleAfter } }
      }))
    }

    // P6: keyword search vs a bare findProviders, from plain nodes across the swarm
    const seekers = swarm.nodes.filter(n => n.index > roles.fresh)
    const seekerOf = (i: number): SwarmNode => seekers[i % seekers.length]!
    const search = async (i: number): Promise<number> => {
      const t0 = performance.now()
      const r = await seekerOf(i).client.call('search', { words: ['benchtransfer'] }, LONG)
      const ms = performance.now() - t0
      if (!r.offers.some((o: any) => o.offer === transferWork.offer)) throw new Error('search did not find the offer')
      return ms
    }
    const bare = async (i: number): Promise<number> => {
      const t0 = performance.now()
      const r = await seekerOf(i).client.call('providers', { content: transferWork.content }, LONG)
      const ms = performance.now() - t0
      if (r.providers.length === 0) throw new Error('findProviders found no provider')
      return ms
    }
    if (wanted('P6')) rows.push(row({
      id: 'P6',
      measures: `keyword search, ${swarm.nodes.length}-node swarm, vs bare findProviders`,
      unit: 'ms',
      samples: await paired(Math.max(sizes.repeats, Math.min(seekers.length, 11)), search, bare),
      higherIsBetter: false,
      target: 1.5
    }))
    return rows
  } finally {
    for (const child of raw) if (child.exitCode == null && child.signalCode == null) child.kill('SIGTERM')
    await swarm.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

async function writeRandomFile (file: string, size: number): Promise<void> {
  const out = createWriteStream(file)
  const block = randomBytes(Math.min(size, 4 * MiB))
  for (let written = 0; written < size; written += block.length) {
    const piece = block.subarray(0, Math.min(block.length, size - written))
    if (!out.write(piece)) await new Promise<void>(resolve => { out.once('drain', () => { resolve() }) })
  }
  await new Promise<void>((resolve, reject) => { out.end((err?: Error | null) => { if (err != null) reject(err); else resolve() }) })
}

/** The median of each key over a list of records */
function medianOf (runs: Array<Record<string, number>>): Record<string, number> {
  const keys = [...new Set(runs.flatMap(r => Object.keys(r)))]
  return Object.fromEntries(keys.map(k => [k, median(runs.flatMap(r => r[k] ?? []))]))
}

/** The mean of each key over a list of records, to 0.1 */
function meanOf (runs: Array<Record<string, number>>): Record<string, number> {
  const keys = [...new Set(runs.flatMap(r => Object.keys(r)))]
  return Object.fromEntries(keys.map(k => {
    const values = runs.flatMap(r => r[k] ?? [])
    return [k, Math.round(10 * values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1)) / 10]
  }))
}

/** A raw-peer process; resolves with its first JSON event */
async function startRawPeer (args: string[], children: ChildProcess[]): Promise<{ pid: number, first: Record<string, unknown>, events: Array<Record<string, unknown>>, exited: Promise<void> }> {
  // the V8 settings of a buyer's node: P1 compares the two processes' work, not their settings
  const child = fork(RAW_PEER, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [...process.execArgv, ...roleNodeFlags(['buyer'])] })
  children.push(child)
  const stderr: string[] = []
  child.stderr!.on('data', d => { stderr.push(String(d)) })
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', code => { if (code === 0 || code == null) resolve(); else reject(new Error(`raw-peer exited ${code}: ${stderr.join('').slice(-500)}`)) })
  })
  exited.catch(() => {})
  const events: Array<Record<string, unknown>> = []
  const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      events.push(JSON.parse(line))
      if (events.length === 1) resolve(events[0]!)
    })
    exited.then(() => { reject(new Error(`raw-peer ended without output: ${stderr.join('').slice(-500)}`)) }, reject)
  })
  return { pid: child.pid!, first, events, exited }
}
