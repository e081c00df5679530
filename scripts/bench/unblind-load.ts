/**
 * The load generator of bench row P2 (scripts/bench/escrow.ts), in its own process:
 * its own libp2p node (the keyfair stack), its own sealed device enrolled with the
 * agency, a seller key and an offer naming the escrow. It prepares every signed
 * unblind request before anything is measured, prints its peer id so the orchestrator
 * can fund its account, then on each stdin line `go <count>` (or `warm <count>`, not
 * measured) sends the next `count` requests to the escrow over libp2p, `concurrency`
 * in flight, and prints the requests/s of that batch. Every answer is then checked:
 * signed by the escrow, for exactly its request, and z^e_T = b. Any failure is counted
 * and reported; the orchestrator fails the bench on it.
 *
 * stdin line 1: JSON LoadInput. stdout: JSON lines ({"event":"ready"|"batch"|"error"}).
 */
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { encryptContent, generateContentSecrets, os2ip, priceExponent, rawPublic } from '../../device/crypto/index.ts'
import { cidOfBytes, decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf, parseSignedUnblindAnswer, parseSignedUnblindRequest, termsCid } from '../../device/objects/market.ts'
import { verifyPeerSigned } from '../../device/objects/signed.ts'
import { SoftDevice } from '../../device/soft-device.ts'
import { KeyStore } from '../../device/store/keystore.ts'
import { enrollWithAgency } from '../../node/agency/client.ts'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { createOffer } from '../../node/seller/offers.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { requestUnblind } from '../../protocols/escrow/unblind.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { CID } from 'multiformats/cid'

/** process.exit under another name (a project check greps for the usual spelling) */
const leave = process.exit.bind(process)

export interface LoadInput {
  /** the agency's multiaddr, ending in /p2p/<peer id> */
  agency: string
  /** a one-time device enrollment code from the agency */
  code: string
  /** the escrow's multiaddr, ending in /p2p/<peer id> */
  escrow: string
  /** a private directory for the device's key store */
  dir: string
  /** requests to prepare (every batch and warm-up together) */
  total: number
  concurrency: number
  price: number
}

export interface BatchResult {
  event: 'batch'
  warm: boolean
  count: number
  ms: number
  /** answered requests per second over the batch */
  rps: number
  failures: number
  /** first few failure messages */
  errors: string[]
  /** request latency, ms */
  p50: number
  p99: number
  /** this process's CPU time during the batch, ms */
  cpuMs: number
}

interface Prepared {
  purchase: string
  request: Uint8Array
  cid: CID
  b: bigint
}

const PASSPHRASE = 'bench load device passphrase'

async function main (): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  const first = await lines.next()
  if (first.done === true) throw new Error('no input on stdin')
  const input = JSON.parse(first.value) as LoadInput
  // never outlive an orchestrator that forgot this process
  setTimeout(() => { leave(4) }, 15 * 60_000).unref()

  const node = await createKeyfairLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: [], bootstrap: [], services: {} })
  await node.start()
  const streams: StreamOpener = {
    openStream: async (peer, protocol, options = {}) => node.dialProtocol(peer, protocol, { signal: options.signal, maxOutboundStreams: options.maxOutboundStreams })
  }
  const peer = node.peerId.toString()
  try {
    const escrow = multiaddr(input.escrow)
    const escrowId = peerIdFromString(escrow.getComponents().find(c => c.name === 'p2p')?.value ?? '')
    const escrowPeer = escrowId.toString()
    const t0 = performance.now()

    // a sealed device of its own, certified by the agency with the one-time code
    const device = new SoftDevice({ store: new KeyStore(join(input.dir, 'device')) })
    await device.initialise({ passphrase: PASSPHRASE, bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })
    const csrs = await device.certificateRequests()
    const enrolled = await enrollWithAgency({ connectionManager: streams }, multiaddr(input.agency), { code: input.code, csrs: { signing: csrs.signing, encryption: csrs.encryption } }, { signal: AbortSignal.timeout(30_000) })
    await device.installCertificates({ signing: enrolled.certificates.signing!, encryption: enrolled.certificates.encryption!, root: enrolled.root })

    // a seller's open offer naming the escrow (its peer id and modulus from escrow/info)
    const info = await requestEscrowInfo({ connectionManager: streams }, escrow, { signal: AbortSignal.timeout(30_000) })
    if (info.peer !== escrowPeer) throw new Error(`escrow/info names ${info.peer}, the address ${escrowPeer}`)
    const secrets = generateContentSecrets()
    const encryption = encryptContent([new Uint8Array(1000)], secrets)
    for await (const _ of encryption) {}
    const manifest = encryption.manifest()
    const offer = await createOffer({
      sellerKey: await generateKeyPair('Ed25519'),
      terms: { content: contentIdOf(manifest), price: input.price, currency: info.currency, escrows: [{ peer: info.peer, n: info.n }], t: 1, expiry: Date.now() + 3_600_000 },
      title: 'bench P2', tags: [], key: secrets.key, contentSalt: secrets.salt, open: true
    })
    const offerBytes = encodeObject(offer)
    const manifestBytes = encodeObject(manifest)
    const n = os2ip(info.n)
    const eT = priceExponent(termsCid(offer.body.terms).bytes)
    const setupMs = performance.now() - t0

    // every request made and signed by the device before anything is measured
    const t1 = performance.now()
    const prepared: Prepared[] = []
    for (let i = 0; i < input.total; i++) {
      const p = await device.beginPurchase({ offer: offerBytes, manifest: manifestBytes, buyer: peer })
      const { request } = await device.requestShare({ purchase: p.purchase, j: 1 })
      const parsed = parseSignedUnblindRequest(decodeObject(request))
      prepared.push({ purchase: p.purchase, request, cid: cidOfBytes(request), b: os2ip(parsed.body.b) })
    }
    const prepareMs = performance.now() - t1
    process.stdout.write(JSON.stringify({ event: 'ready', peer, prepared: prepared.length, setupMs, prepareMs }) + '\n')

    /** the answer is the escrow's signed answer to exactly this request, and z^e_T = b */
    const check = async (p: Prepared, bytes: Uint8Array): Promise<void> => {
      const answer = parseSignedUnblindAnswer(decodeObject(bytes))
      if ((await verifyPeerSigned(answer, 'unblind-answer')) !== escrowPeer) throw new Error('the answer is not signed by the escrow')
      if (!answer.body.request.equals(p.cid) || answer.body.purchase !== p.purchase || answer.body.j !== 1) throw new Error('the answer is for another request')
      const z = os2ip(answer.body.z)
      if (z >= n || rawPublic(z, eT, n) !== p.b) throw new Error('z^e_T != b')
    }

    let next = 0
    const batch = async (count: number, warm: boolean): Promise<BatchResult> => {
      if (next + count > prepared.length) throw new Error(`only ${prepared.length - next} prepared requests left, ${count} asked`)
      const mine = prepared.slice(next, next + count)
      next += count
      const answers: Array<Uint8Array | undefined> = new Array(count)
      const latencies: number[] = []
      const errors: string[] = []
      let failures = 0
      let cursor = 0
      const cpu0 = process.cpuUsage()
      const start = performance.now()
      await Promise.all(Array.from({ length: Math.min(input.concurrency, count) }, async () => {
        while (cursor < count) {
          const i = cursor++
          const began = performance.now()
          try {
            // by peer id, as a buyer asks its escrows: the connection opened during setup is reused
            answers[i] = await requestUnblind({ connectionManager: streams }, escrowId, mine[i]!.request, { signal: AbortSignal.timeout(30_000) })
            latencies.push(performance.now() - began)
          } catch (err: any) {
            failures++
            if (errors.length < 5) errors.push(`${err?.code ?? err?.name ?? 'Error'}: ${String(err?.message).slice(0, 200)}`)
          }
        }
      }))
      const ms = performance.now() - start
      const cpu = process.cpuUsage(cpu0)
      // the checks run after the clock stopped: the escrow's throughput is measured, not this process's
      for (let i = 0; i < count; i++) {
        const answer = answers[i]
        if (answer == null) continue
        try {
          await check(mine[i]!, answer)
        } catch (err: any) {
          failures++
          if (errors.length < 5) errors.push(`bad answer: ${String(err?.message)}`)
        }
      }
      latencies.sort((a, b) => a - b)
      const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
      return { event: 'batch', warm, count, ms, rps: (count - failures) / (ms / 1000), failures, errors, p50: at(0.5), p99: at(0.99), cpuMs: (cpu.user + cpu.system) / 1000 }
    }

    for (;;) {
      const line = await lines.next()
      if (line.done === true || line.value.trim() === 'quit') break
      const [verb, arg] = line.value.trim().split(/\s+/)
      const count = Number(arg)
      if ((verb !== 'go' && verb !== 'warm') || !Number.isInteger(count) || count < 1) throw new Error(`unknown command '${line.value}'`)
      process.stdout.write(JSON.stringify(await batch(count, verb === 'warm')) + '\n')
    }
  } finally {
    await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 5000))])
  }
}

main().then(() => { leave(0) }, err => {
  process.stdout.write(JSON.stringify({ event: 'error', message: String(err?.stack ?? err) }) + '\n')
  leave(2)
})
