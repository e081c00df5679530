/**
 * A memory attack on a running node: several peers (each its own libp2p node, its own
 * connection) open streams of one protocol, send the length prefix of a large frame and
 * as much of its body as the node takes, then withhold the rest. Meanwhile a well-behaved
 * peer keeps asking the escrow for its info. Reports the target's resident memory before,
 * at its peak, and how long it took to come back once the attackers left.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { FrameKind } from '../../protocols/toolkit/frames.ts'
import { drained } from '../../protocols/toolkit/drain.ts'
import { memoryOf, resetPeak } from './world.ts'
import type { TargetProcess } from './world.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

export interface StallAttack {
  protocol: string
  /** attacking peers, one connection each */
  peers: number
  streamsPerPeer: number
  /** the length each frame announces */
  frameBytes: number
  /** how much of each body is sent before the rest is withheld */
  sendBytes: number
  /** how long the frames are held after sending */
  holdMs: number
  /**
   * the round run before idle is read: `small` (default) two streams of the same traffic;
   * `same` the whole attack, held at most a second, so that what the allocator keeps after
   * a first burst of that many streams counts as idle
   */
  warmup?: 'small' | 'same'
}

export interface AttackReport {
  /** resident memory of the target, MB */
  idleRss: number
  peakRss: number
  /** RSS once the attackers left, and how long it took to get within 10% of idle (or the last reading) */
  afterRss: number
  recoveredMs: number | undefined
  streams: number
  /** attacker streams the target reset */
  reset: number
  /** info requests of the well-behaved peer during the attack */
  served: number
  failed: number
}

const PIECE = 64 * 1024

async function peerNode (): Promise<Libp2p> {
  const node = await createKeyfairLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], services: {} })
  await node.start()
  return node
}

function prefix (length: number): Uint8Array {
  const out: number[] = []
  while (length >= 0x80) {
    out.push((length % 0x80) | 0x80)
    length = Math.floor(length / 0x80)
  }
  out.push(length)
  return Uint8Array.from(out)
}

/** Sends the prefix, the kind and up to `bytes` of body; stops early when the target resets */
async function stall (stream: Stream, frameBytes: number, bytes: number): Promise<void> {
  stream.send(prefix(frameBytes))
  stream.send(Uint8Array.of(FrameKind.MESSAGE))
  const piece = new Uint8Array(PIECE).fill(0x41)
  for (let sent = 1; sent < bytes && stream.status === 'open'; sent += PIECE) {
    const n = Math.min(PIECE, bytes - sent)
    try {
      if (!stream.send(n === PIECE ? piece : piece.subarray(0, n))) await drained(stream, { signal: AbortSignal.timeout(5000) })
    } catch {
      return
    }
  }
}

interface Round {
  streams: number
  reset: number
  served: number
  failed: number
}

/** Opens the attackers' streams while the honest peer keeps asking; closes every peer after */
async function attackRound (target: TargetProcess, escrow: TargetProcess, attack: StallAttack): Promise<Round> {
  const honest = await peerNode()
  const attackers = await Promise.all(Array.from({ length: attack.peers }, peerNode))
  const streams: Stream[] = []
  let served = 0
  let failed = 0
  let attacking = true
  const streamsOf = { connectionManager: { openStream: async (peer: Parameters<Libp2p['dialProtocol']>[0], protocol: string, o: { signal?: AbortSignal } = {}) => honest.dialProtocol(peer, protocol, o) } }
  const probe = (async () => {
    while (attacking) {
      try {
        await requestEscrowInfo(streamsOf, multiaddr(escrow.addr), { signal: AbortSignal.timeout(5000) })
        served++
      } catch {
        failed++
      }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  })()
  try {
    await Promise.all(attackers.map(async node => {
      for (let i = 0; i < attack.streamsPerPeer; i++) {
        try {
          const stream = await node.dialProtocol(multiaddr(target.addr), attack.protocol, { signal: AbortSignal.timeout(10_000) })
          streams.push(stream)
          void stall(stream, attack.frameBytes, attack.sendBytes)
        } catch {
          // a refused stream is the target defending itself
        }
      }
    }))
    await new Promise(resolve => setTimeout(resolve, attack.holdMs))
  } finally {
    attacking = false
    await probe
  }
  const reset = streams.filter(s => s.status === 'reset').length
  for (const s of streams) if (s.status === 'open') s.abort(new Error('attack over'))
  await Promise.all([...attackers, honest].map(async n => n.stop()))
  return { streams: streams.length, reset, served, failed }
}

/**
 * Idle is read after a round of the same traffic (see `warmup`): the code it compiles and
 * the memory the allocator keeps after it (glibc returns freed memory to the system only in
 * part) stay with any process that has served once, so the attack's own cost, and whether
 * it is given back, are measured against a process already at work.
 */
export async function stallAttack (target: TargetProcess, escrow: TargetProcess, attack: StallAttack): Promise<AttackReport> {
  const warmup = attack.warmup === 'same'
    ? { ...attack, holdMs: Math.min(attack.holdMs, 1000) }
    : { ...attack, peers: 1, streamsPerPeer: 2, holdMs: 500 }
  await attackRound(target, escrow, warmup)
  const idleRss = (await memoryOf(target.pid)).rss
  await resetPeak(target.pid)
  const round = await attackRound(target, escrow, attack)
  const peakRss = (await memoryOf(target.pid)).peak
  const ended = Date.now()
  let afterRss = (await memoryOf(target.pid)).rss
  let recoveredMs: number | undefined
  while (Date.now() - ended < 10_000) {
    afterRss = (await memoryOf(target.pid)).rss
    if (afterRss <= idleRss * 1.1) {
      recoveredMs = Date.now() - ended
      break
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  return { idleRss: Math.round(idleRss), peakRss: Math.round(peakRss), afterRss: Math.round(afterRss), recoveredMs, ...round }
}
