/**
 * P2: escrow unblind requests/s of ONE escrow process (`keyfair start --role escrow`,
 * 3072-bit key) answering a load-generator process over libp2p on loopback: device
 * certificate and signature check, offer check, every rule, the d_T private op, the
 * signed answer and the hold committed to the ledger with fsync before the answer
 * leaves. Baseline: raw node:crypto RSA private ops/s at 3072 bits (RSA_NO_PADDING
 * privateDecrypt with an ordinary e = 65537 key) in this process, in batches
 * alternating with the measured ones.
 *
 * Processes: an agency and the escrow (scripts/swarm.ts), enrolled through the CLI;
 * scripts/bench/unblind-load.ts with its own device enrolled with the agency. All of
 * them are stopped by pid and their directories removed, whatever happens.
 */
import { spawn } from 'node:child_process'
import { constants as cryptoConstants, generateKeyPair as generateRsa, privateDecrypt, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Swarm } from '../swarm.ts'
import { cpuMeter } from './proc.ts'
import { fmt, median, paired, row } from './report.ts'
import type { ChildProcess } from 'node:child_process'
import type { KeyObject } from 'node:crypto'
import type { SwarmNode } from '../swarm.ts'
import type { Row } from './report.ts'
import type { BatchResult, LoadInput } from './unblind-load.ts'

const LOAD_SCRIPT = fileURLToPath(new URL('./unblind-load.ts', import.meta.url))
const PRICE = 1
const BITS = 3072

/** The load generator: JSON lines out, commands in */
export class LoadProcess {
  readonly child: ChildProcess
  private readonly events: any[] = []
  private waiting?: (event: any) => void
  private readonly stderr: string[] = []
  private readonly exited: Promise<void>

  constructor (input: LoadInput) {
    this.child = spawn(process.execPath, [LOAD_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.exited = new Promise(resolve => { this.child.once('exit', () => { resolve() }) })
    createInterface({ input: this.child.stderr! }).on('line', line => { if (this.stderr.length < 50) this.stderr.push(line) })
    createInterface({ input: this.child.stdout! }).on('line', line => {
      let event: any
      try { event = JSON.parse(line) } catch { return }
      this.events.push(event)
      this.waiting?.(event)
    })
    this.child.once('exit', (code, signal) => { this.waiting?.({ event: 'exit', code, signal }) })
    this.child.stdin!.write(JSON.stringify(input) + '\n')
  }

  /** the next event; an error or an exit of the child is thrown */
  async next (timeoutMs: number): Promise<any> {
    const event = this.events.shift() ?? await new Promise<any>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting = undefined; reject(new Error(`load generator: nothing within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting = e => {
        clearTimeout(timer)
        this.waiting = undefined
        this.events.splice(this.events.indexOf(e), 1)
        resolve(e)
      }
    })
    if (event.event === 'error' || event.event === 'exit') throw new Error(`load generator failed: ${event.message ?? `exit ${event.code ?? event.signal}`} ${this.stderr.join(' | ')}`)
    return event
  }

  async batch (verb: 'go' | 'warm', count: number): Promise<BatchResult> {
    this.child.stdin!.write(`${verb} ${count}\n`)
    return this.next(120_000)
  }

  async stop (): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    this.child.stdin!.end('quit\n')
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, 8000)
    await this.exited
    clearTimeout(timer)
  }
}

export async function benchUnblind (options: { quick: boolean, log: (line: string) => void }): Promise<Row> {
  const { quick, log } = options
  const repeats = quick ? 2 : 5
  const batch = quick ? 60 : 400
  // steady state: the escrow's request path is JIT-compiled before the clock starts
  const warm = quick ? 30 : 200
  const concurrency = 32
  const rawOps = Math.max(batch, 200)
  const started = performance.now()
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-bench-p2-'))
  let swarm: Swarm | undefined
  let load: LoadProcess | undefined
  try {
    const baselineKey = promisify(generateRsa)('rsa', { modulusLength: BITS }).then(k => k.privateKey)
    baselineKey.catch(() => {})
    swarm = await Swarm.start({
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', String(BITS)]] }
      ],
      topology: 'star',
      // KEYFAIR_NODE_FLAGS='--cpu-prof --cpu-prof-dir=<dir>' profiles the escrow (scripts/swarm.ts)
      baseDir: dir
    })
    const [agency, escrow] = swarm.nodes as [SwarmNode, SwarmNode]
    const agencyAddr = agency.addresses.find(a => a.startsWith('/ip4/127.0.0.1/'))!
    const escrowAddr = escrow.addresses.find(a => a.startsWith('/ip4/127.0.0.1/'))!
    const { code: escrowCode } = await agency.client.call('agency.enrollCode', { kind: 'escrow' })
    await escrow.client.call('escrow.enroll', { agency: agencyAddr, code: escrowCode }, { timeoutMs: 120_000 })
    const { code: deviceCode } = await agency.client.call('agency.enrollCode', { kind: 'device' })
    const info = await escrow.client.call('escrow.info')
    if (info.bits !== BITS) throw new Error(`the escrow's key has ${String(info.bits)} bits, not ${BITS}`)
    const upMs = performance.now() - started

    const total = warm + repeats * batch
    load = new LoadProcess({ agency: agencyAddr, code: deviceCode, escrow: escrowAddr, dir: join(dir, 'load'), total, concurrency, price: PRICE })
    const ready = await load.next(120_000)
    await escrow.client.call('escrow.deposit', { account: ready.peer, amount: total * PRICE, memo: 'bench P2' })
    log(`P2: processes up in ${(upMs / 1000).toFixed(1)} s; ${total} requests prepared in ${(ready.prepareMs / 1000).toFixed(1)} s; ${concurrency} in flight`)

    const warmed = await load.batch('warm', warm)
    if (warmed.failures > 0) throw new Error(`P2: ${warmed.failures} of ${warm} warm-up requests failed: ${warmed.errors.join('; ')}`)

    const key: KeyObject = await baselineKey
    const n = BigInt('0x' + Buffer.from(key.export({ format: 'jwk' }).n!, 'base64url').toString('hex'))
    const input = Buffer.from((BigInt('0x' + randomBytes(BITS / 8).toString('hex')) % n).toString(16).padStart(BITS / 4, '0'), 'hex')
    const raw = async (): Promise<number> => {
      const t0 = performance.now()
      for (let i = 0; i < rawOps; i++) privateDecrypt({ key, padding: cryptoConstants.RSA_NO_PADDING }, input)
      return rawOps / ((performance.now() - t0) / 1000)
    }
    const batches: BatchResult[] = []
    const escrowCpu: number[] = []
    const subject = async (): Promise<number> => {
      const spent = await cpuMeter({ escrow: escrow.pid })
      const result = await load!.batch('go', batch)
      const { escrow: cpu } = await spent()
      if (result.failures > 0) throw new Error(`P2: ${result.failures} of ${batch} requests failed: ${result.errors.join('; ')}`)
      batches.push(result)
      if (cpu != null) escrowCpu.push(cpu / batch)
      return result.rps
    }
    const samples = await paired(repeats, subject, raw, (i, value, base) => {
      log(`P2: run ${i + 1}/${repeats}: ${fmt(value)} req/s vs ${fmt(base)} raw ops/s (${(value / base).toFixed(2)}×)`)
    })
    return row({
      id: 'P2',
      measures: `escrow unblind, one escrow process, ${BITS}-bit, device check + ledger commit`,
      unit: 'req/s',
      baselineUnit: 'raw ops/s',
      samples,
      higherIsBetter: true,
      target: 0.6,
      details: {
        requestsPerBatch: batch,
        concurrency,
        // the escrow runs its default setting ('auto': one per core)
        unblindWorkers: info.unblindWorkers,
        rawOpsPerBatch: rawOps,
        latencyMs: { p50: median(batches.map(b => b.p50)), p99: median(batches.map(b => b.p99)) },
        escrowCpuMsPerRequest: escrowCpu.length > 0 ? median(escrowCpu) : null,
        loadCpuMsPerRequest: median(batches.map(b => b.cpuMs / b.count)),
        rawOpMs: 1000 / median(samples.baseline),
        startupMs: Math.round(upMs),
        prepareMs: Math.round(ready.prepareMs),
        totalMs: Math.round(performance.now() - started)
      }
    })
  } finally {
    await load?.stop()
    await swarm?.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
