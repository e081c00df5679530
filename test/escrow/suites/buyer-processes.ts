// Buyer processes for the process-level escrow tests (test/helpers/escrow-buyer.ts): each
// with its own libp2p identity and enrolled device on disk, all told to send at once.
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeObject } from '../../../device/objects/codec.ts'
import { contentIdOf } from '../../../device/objects/market.ts'
import { createOffer } from '../../../node/seller/offers.ts'
import { PASSPHRASE } from '../../helpers/escrow-world.ts'
import type { ChildProcess } from 'node:child_process'
import type { BuyerInput, BuyerResult } from '../../helpers/escrow-buyer.ts'
import type { EscrowProcess, ProcessHost } from './escrow-process.ts'

const BUYER_SCRIPT = fileURLToPath(new URL('../../helpers/escrow-buyer.ts', import.meta.url))
export const PRICE = 7

/** t = 1 offers at PRICE naming the escrow, each written to a file for the buyers */
export async function offerFiles ({ world, work }: ProcessHost, escrow: EscrowProcess, name: string, count: number): Promise<string[]> {
  return Promise.all(Array.from({ length: count }, async (_, k) => {
    const offer = await createOffer({
      sellerKey: world.sellerKey,
      terms: { content: contentIdOf(work.manifest), price: PRICE, currency: 'EUR', escrows: [{ peer: escrow.peer, n: escrow.n }], t: 1, expiry: Date.now() + 3_600_000 + k },
      title: `${name} ${k}`, tags: [], key: work.secrets.key, contentSalt: work.secrets.salt, open: true
    })
    const file = join(world.dir, `${name}-offer-${k}.cbor`)
    await writeFile(file, encodeObject(offer))
    return file
  }))
}

export interface Buyer {
  name: string
  peer: string
  key: string
  store: string
  device: string
}

/** Buyers with their own libp2p identity and an enrolled device on disk */
export async function makeBuyers ({ world }: ProcessHost, prefix: string, count: number): Promise<Buyer[]> {
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const name = `${prefix}-${i}`
    const key = await generateKeyPair('Ed25519')
    const { deviceId } = await world.device(name)
    return { name, peer: peerIdFromPrivateKey(key).toString(), key: Buffer.from(privateKeyToProtobuf(key)).toString('hex'), store: join(world.dir, `${name}-device`), device: deviceId }
  }))
}

export interface BuyerRun {
  /** resolves once every buyer has prepared its requests and was told to go; the time of the go */
  started: Promise<number>
  finished: Promise<BuyerResult[]>
}

/** Starts one process per buyer; each prepares, then all send at once */
export function runBuyers ({ children, manifestFile }: ProcessHost, escrow: EscrowProcess, buyers: Buyer[], input: Omit<BuyerInput, 'escrow' | 'key' | 'store' | 'passphrase' | 'manifest'>): BuyerRun {
  const prepared: Array<Promise<void>> = []
  const results: Array<Promise<BuyerResult>> = []
  const procs: ChildProcess[] = []
  for (const buyer of buyers) {
    const child = spawn(process.execPath, [BUYER_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
    children.add(child)
    procs.push(child)
    const stderr: string[] = []
    createInterface({ input: child.stderr! }).on('line', line => { if (stderr.length < 200) stderr.push(line) })
    const lines = createInterface({ input: child.stdout! })
    let onPrepared!: () => void
    let onResult!: (r: BuyerResult) => void
    prepared.push(new Promise(resolve => { onPrepared = resolve }))
    results.push(new Promise((resolve, reject) => {
      onResult = resolve
      child.once('exit', (code, signal) => {
        // a result line resolved this already; otherwise this is the failure
        reject(new Error(`buyer ${buyer.name} exited (${code ?? signal}) without a result: ${stderr.join('\n')}`))
      })
    }))
    lines.on('line', line => {
      let event: any
      try { event = JSON.parse(line) } catch { return }
      if (event.event === 'prepared') onPrepared()
      if (event.event === 'result') onResult(event as BuyerResult)
    })
    const full: BuyerInput = { ...input, escrow: escrow.addr, key: buyer.key, store: buyer.store, passphrase: PASSPHRASE, manifest: manifestFile, waitForGo: true }
    child.stdin!.write(JSON.stringify(full) + '\n')
  }
  const failedEarly = Promise.race(results).then(() => new Promise<never>(() => {}))
  const started = Promise.race([Promise.all(prepared), failedEarly]).then(() => {
    for (const child of procs) child.stdin!.end('go\n')
    return Date.now()
  })
  const finished = Promise.all(results)
  // awaited by the test; a test that failed before that must not leave an unhandled rejection
  finished.catch(() => {})
  started.catch(() => {})
  return { started, finished }
}
