/**
 * `npm run fuzz -- --protocol <name|all> --frames N [--concurrency C] [--seed S]`
 *
 * Starts an agency and an escrow-and-seller node as real processes, then sends each of
 * keyfair's protocols N hostile frames over real libp2p (scripts/fuzz/frames.ts), one
 * stream each, and reports per protocol: answers, refusals by code, resets, and any
 * reset of a canonical frame (a fault: such a frame must be answered or refused). At the
 * end every node must still serve, the escrow's ledger must be unchanged and its audit
 * clean. One JSON line per protocol and a summary on stdout; exit 1 on any fault.
 */
import { isDeepStrictEqual, parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createKeyfairLibp2p } from '../node/libp2p.ts'
import { CRL_LIMITS, requestCrl } from '../protocols/agency/crl.ts'
import { ENROLL_LIMITS } from '../protocols/agency/enroll.ts'
import { ACCOUNT_LIMITS } from '../protocols/escrow/account.ts'
import { INFO_LIMITS, requestEscrowInfo } from '../protocols/escrow/info.ts'
import { MAX_PLAIN_SETTLEMENT_BYTES } from '../protocols/escrow/settle.ts'
import { RENEW_LIMITS } from '../protocols/escrow/renew.ts'
import { UNBLIND_LIMITS } from '../protocols/escrow/unblind.ts'
import { CONTENT_LIMITS } from '../protocols/market/content.ts'
import { LICENSE_LIMITS } from '../protocols/market/license.ts'
import { OFFER_LIMITS, requestOffers } from '../protocols/market/offer.ts'
import { decodeMessage } from '../protocols/toolkit/codec.ts'
import { FrameKind, FrameStream } from '../protocols/toolkit/frames.ts'
import { drained } from '../protocols/toolkit/drain.ts'
import { FUZZ_PROTOCOLS, Rng, SERVED_BY, fuzzFrame } from './fuzz/frames.ts'
import { TargetWorld, memoryOf, resetPeak } from './fuzz/world.ts'
import type { FuzzProtocol } from './fuzz/frames.ts'
import type { ProtocolLimits } from '../protocols/toolkit/service.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

/** The largest request each protocol's server reads from a stranger */
const REQUEST_LIMIT: Record<FuzzProtocol, number> = {
  info: limitOf(INFO_LIMITS),
  account: limitOf(ACCOUNT_LIMITS),
  unblind: limitOf(UNBLIND_LIMITS),
  settle: MAX_PLAIN_SETTLEMENT_BYTES,
  enroll: limitOf(ENROLL_LIMITS),
  crl: limitOf(CRL_LIMITS),
  offer: limitOf(OFFER_LIMITS),
  content: limitOf(CONTENT_LIMITS),
  license: limitOf(LICENSE_LIMITS),
  renew: limitOf(RENEW_LIMITS)
}

/** Streams each protocol takes at once from one connection (more are reset by libp2p, rightly) */
const STREAM_LIMIT: Record<FuzzProtocol, number> = {
  info: INFO_LIMITS.maxInboundStreams,
  account: ACCOUNT_LIMITS.maxInboundStreams,
  unblind: UNBLIND_LIMITS.maxInboundStreams,
  settle: 32,
  enroll: ENROLL_LIMITS.maxInboundStreams,
  crl: CRL_LIMITS.maxInboundStreams,
  offer: OFFER_LIMITS.maxInboundStreams,
  content: CONTENT_LIMITS.maxInboundStreams,
  license: LICENSE_LIMITS.maxInboundStreams,
  renew: RENEW_LIMITS.maxInboundStreams
}

function limitOf (limits: ProtocolLimits): number {
  return limits.maxRequestBytes ?? limits.maxFrameBytes
}

export interface ProtocolReport {
  protocol: FuzzProtocol
  frames: number
  answers: number
  refusals: Record<string, number>
  resets: number
  /** canonical, well-formed frames within the limit that were reset: faults */
  faults: number
  faultCases: string[]
  /** the stream ended without any frame */
  closed: number
  timeouts: number
  ms: number
  /** the target process's resident memory, MB */
  rss: { before: number, after: number, peak: number }
}

export interface FuzzReport {
  protocols: ProtocolReport[]
  serving: boolean
  ledgerUnchanged: boolean
  audit: { ok: boolean, violations: string[] }
  alive: boolean
}

type Outcome = 'answer' | 'reset' | 'closed' | 'timeout' | { refusal: string }

/** One frame on its own stream; what came back */
async function exchange (node: Libp2p, target: string, protocol: string, bytes: Uint8Array): Promise<Outcome> {
  let stream: Stream
  try {
    stream = await node.dialProtocol(multiaddr(target), protocol, { signal: AbortSignal.timeout(10_000) })
  } catch {
    return 'reset'
  }
  const frames = new FrameStream(stream, { maxFrameBytes: 20 * 1024 * 1024, readTimeoutMs: 10_000 })
  try {
    if (!stream.send(bytes)) await drained(stream, { signal: AbortSignal.timeout(10_000) })
    await stream.close({ signal: AbortSignal.timeout(10_000) }).catch(() => {})
    const frame = await frames.readFrame()
    if (frame.kind === FrameKind.ERROR) {
      const error = decodeMessage(frame.body) as { code?: unknown } | null
      return { refusal: typeof error?.code === 'string' ? error.code : 'ERR_?' }
    }
    return 'answer'
  } catch (err: any) {
    if (err?.code === 'ERR_READ_TIMEOUT') return 'timeout'
    if (err?.code === 'ERR_TRUNCATED_FRAME' && stream.status !== 'reset') return 'closed'
    return 'reset'
  } finally {
    if (stream.status === 'open') stream.abort(new Error('fuzz exchange over'))
  }
}

export interface FuzzOptions {
  protocols: FuzzProtocol[]
  frames: number
  concurrency?: number
  seed?: number
  log?: (line: string) => void
}

export async function runFuzz (options: FuzzOptions): Promise<FuzzReport> {
  const privateKey = await generateKeyPair('Ed25519')
  const self = peerIdFromPrivateKey(privateKey).toString()
  const world = await TargetWorld.create({ account: self })
  const node = await createKeyfairLibp2p({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], services: {} })
  await node.start()
  try {
    const ledgerBefore = await world.ledger()
    const reports: ProtocolReport[] = []
    for (const protocol of options.protocols) {
      const target = SERVED_BY[protocol] === 'agency' ? world.agency : world.escrow
      const rng = new Rng((options.seed ?? 1) + protocol.length * 7919)
      const report: ProtocolReport = { protocol, frames: 0, answers: 0, refusals: {}, resets: 0, faults: 0, faultCases: [], closed: 0, timeouts: 0, ms: 0, rss: { before: 0, after: 0, peak: 0 } }
      await resetPeak(target.pid)
      report.rss.before = (await memoryOf(target.pid)).rss
      const t0 = performance.now()
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < options.frames) {
          next++
          const frame = fuzzFrame(protocol, rng, self)
          const outcome = await exchange(node, target.addr, FUZZ_PROTOCOLS[protocol], frame.bytes)
          report.frames++
          if (outcome === 'answer') report.answers++
          else if (outcome === 'closed') report.closed++
          else if (outcome === 'timeout') report.timeouts++
          else if (outcome === 'reset') {
            report.resets++
            if (frame.canonical && frame.length <= REQUEST_LIMIT[protocol]) {
              report.faults++
              if (report.faultCases.length < 5) report.faultCases.push(`${frame.what}: ${Buffer.from(frame.bytes.subarray(0, 200)).toString('hex')}`)
            }
          } else report.refusals[outcome.refusal] = (report.refusals[outcome.refusal] ?? 0) + 1
        }
      }
      // half the protocol's stream limit at most: a closing stream still counts for a moment
      const concurrency = Math.max(1, Math.min(options.concurrency ?? 16, Math.floor(STREAM_LIMIT[protocol] / 2)))
      await Promise.all(Array.from({ length: concurrency }, worker))
      report.ms = Math.round(performance.now() - t0)
      const memory = await memoryOf(target.pid)
      report.rss.after = Math.round(memory.rss)
      report.rss.peak = Math.round(memory.peak)
      report.rss.before = Math.round(report.rss.before)
      reports.push(report)
      options.log?.(JSON.stringify(report))
    }
    // every node still serves its protocols
    let serving = true
    try {
      const streams = { connectionManager: { openStream: async (peer: Parameters<Libp2p['dialProtocol']>[0], protocol: string, o: { signal?: AbortSignal } = {}) => node.dialProtocol(peer, protocol, o) } }
      await requestEscrowInfo(streams, multiaddr(world.escrow.addr), { signal: AbortSignal.timeout(10_000) })
      await requestCrl(streams, multiaddr(world.agency.addr), { signal: AbortSignal.timeout(10_000) })
      await requestOffers(streams, multiaddr(world.escrow.addr), { keyword: 'anything' }, { signal: AbortSignal.timeout(10_000) })
    } catch (err: any) {
      options.log?.(`a node stopped serving: ${err.code ?? err.message}`)
      serving = false
    }
    const ledgerUnchanged = isDeepStrictEqual(await world.ledger(), ledgerBefore)
    const audit = await world.audit()
    return { protocols: reports, serving, ledgerUnchanged, audit: { ok: audit.ok, violations: audit.violations }, alive: world.alive() }
  } finally {
    await node.stop()
    await world.stop()
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      protocol: { type: 'string', default: 'all' },
      frames: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '16' },
      seed: { type: 'string', default: '1' }
    }
  })
  const names = Object.keys(FUZZ_PROTOCOLS) as FuzzProtocol[]
  const protocols = values.protocol === 'all' ? names : values.protocol.split(',') as FuzzProtocol[]
  for (const p of protocols) {
    if (!names.includes(p)) {
      process.stderr.write(`unknown protocol ${p}: one of ${names.join(', ')} or all\n`)
      process.exit(2)
    }
  }
  const report = await runFuzz({
    protocols,
    frames: Number(values.frames),
    concurrency: Number(values.concurrency),
    seed: Number(values.seed),
    log: line => { process.stdout.write(line + '\n') }
  })
  const { protocols: rows, ...summary } = report
  const faults = rows.reduce((n, r) => n + r.faults, 0)
  process.stdout.write(JSON.stringify({ ...summary, frames: rows.reduce((n, r) => n + r.frames, 0), faults, peakRssMb: Math.max(...rows.map(r => r.rss.peak)) }) + '\n')
  process.exitCode = faults === 0 && summary.serving && summary.ledgerUnchanged && summary.audit.ok && summary.alive ? 0 : 1
}
