/**
 * The baseline of P1: a bare libp2p node with keyfair's stack (TCP, noise, yamux) and
 * nothing else, as its own process. `--serve` listens and, on each stream of the bench
 * protocol, sends the number of bytes asked for in 1 MiB pieces (what a provider sends
 * of a 1 MiB-chunk work); `--fetch <multiaddr> --bytes N` dials it, receives N bytes and
 * prints the transfer time, its CPU and V8's full collections during it. `--idle-ms`
 * waits that long before every fetch after the first, as a long-running node sits
 * between purchases. One JSON line on stdout per event.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { GcMonitor } from '../../node/gc-monitor.ts'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { drained } from '../../protocols/toolkit/drain.ts'
import type { Stream } from '@libp2p/interface'

const PROTOCOL = '/keyfair-bench/raw/1.0.0'
const PIECE = 1024 * 1024
const TIMEOUT_MS = 60_000

const { values } = parseArgs({ options: { serve: { type: 'boolean', default: false }, fetch: { type: 'string' }, bytes: { type: 'string' }, repeat: { type: 'string', default: '1' }, 'idle-ms': { type: 'string', default: '0' } } })
const print = (event: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(event) + '\n') }

const node = await createKeyfairLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], services: {} })
await node.start()
const stop = async (): Promise<void> => { await node.stop() }
process.once('SIGTERM', () => { void stop().then(() => process.exit(0)) })
// the bench holds an IPC channel: when it goes, so does this process
process.once('disconnect', () => { void stop().then(() => process.exit(0)) })

if (values.serve) {
  const piece = new Uint8Array(PIECE).fill(7)
  await node.handle(PROTOCOL, async (stream: Stream) => {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    let asked = 0
    for await (const buf of stream) {
      asked = new DataView(buf.subarray().buffer, buf.subarray().byteOffset).getFloat64(0)
      break
    }
    for (let sent = 0; sent < asked; sent += PIECE) {
      const n = Math.min(PIECE, asked - sent)
      if (!stream.send(n === PIECE ? piece : piece.subarray(0, n))) await drained(stream, { signal })
    }
    await stream.close({ signal })
  }, { maxInboundStreams: 8 })
  print({ event: 'ready', addresses: node.getMultiaddrs().map(a => a.toString()) })
} else if (values.fetch != null) {
  const bytes = Number(values.bytes)
  const target = multiaddr(values.fetch)
  await node.dial(target, { signal: AbortSignal.timeout(TIMEOUT_MS) })
  const collections = new GcMonitor()
  collections.start()
  for (let i = 0; i < Number(values.repeat); i++) {
    if (i > 0) await sleep(Number(values['idle-ms']))
    const collections0 = collections.memory().fullCollections
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const stream = await node.dialProtocol(target, PROTOCOL, { signal: AbortSignal.timeout(TIMEOUT_MS) })
    const ask = new Uint8Array(8)
    new DataView(ask.buffer).setFloat64(0, bytes)
    stream.send(ask)
    let got = 0
    for await (const buf of stream) got += buf.byteLength
    if (got !== bytes) throw new Error(`received ${got} of ${bytes} bytes`)
    const cpu = process.cpuUsage(cpu0)
    const ms = performance.now() - t0
    // the observer is told of collections asynchronously: let it catch up
    await sleep(50)
    print({ event: 'fetched', bytes, ms, cpuMs: (cpu.user + cpu.system) / 1000, fullCollections: collections.memory().fullCollections - collections0 })
  }
  collections.stop()
  await stop()
  // the IPC channel would keep this process alive after its work is done
  process.removeAllListeners('disconnect')
  if (process.connected) process.disconnect()
} else {
  process.stderr.write('usage: raw-peer.ts --serve | --fetch <multiaddr> --bytes N [--repeat K] [--idle-ms MS]\n')
  process.exitCode = 2
}
