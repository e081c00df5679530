// The escrow's private operations in a small pool of worker threads, so the main
// thread parses, verifies and commits the next requests while the workers do RSA.
// The private key lives in the workers; this thread keeps only the public modulus.
import { createPublicKey } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { ExponentError, OutOfRangeError, base64urlToBigint, byteLength, i2osp } from '../../device/crypto/index.ts'
import { termsCid } from '../../device/objects/market.ts'
import { compileCacheEnv } from '../config.ts'
import type { Unblinder } from './unblind.ts'
import type { UnblindJob, UnblindResult } from './unblind-worker.ts'
import type { Terms } from '../../device/objects/market.ts'
import type { KeyObject } from 'node:crypto'
import type { CID } from 'multiformats/cid'

const WORKER = new URL('./unblind-worker.ts', import.meta.url)
/** more threads than cores only queue: at most this many whatever the setting */
export const MAX_UNBLIND_WORKERS = 64

/** The pool size of a setting: 'auto' is one thread per core the process may use */
export function unblindWorkerCount (setting: 'auto' | number): number {
  if (setting === 'auto') return Math.max(1, Math.min(availableParallelism(), 16))
  return setting
}

interface Slot {
  worker: Worker
  pending: Map<number, { resolve: (z: Uint8Array) => void, reject: (err: Error) => void }>
}

export class UnblindPool implements Unblinder {
  readonly n: bigint
  readonly modulus: Uint8Array
  readonly size: number
  private readonly privateKey: KeyObject
  private readonly slots: Slot[] = []
  private nextId = 0
  private closed = false
  /** private-key operations handed to the workers since start */
  operations = 0

  constructor (privateKey: KeyObject, size: number) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_UNBLIND_WORKERS) throw new RangeError(`pool size must be 1..${MAX_UNBLIND_WORKERS}`)
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
    if (jwk.kty !== 'RSA' || typeof jwk.n !== 'string') throw new TypeError('the escrow key must be an RSA key')
    this.n = base64urlToBigint(jwk.n)
    this.modulus = i2osp(this.n, byteLength(this.n))
    this.privateKey = privateKey
    this.size = size
    for (let i = 0; i < size; i++) this.slots.push(this.spawn())
  }

  /** z = b^d_T mod n in the least busy worker */
  async unblind (b: Uint8Array, terms: Terms, id: CID = termsCid(terms)): Promise<Uint8Array> {
    if (this.closed) throw new Error('the unblind pool is closed')
    let slot = this.slots[0]!
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s
    // b and the CID are views into larger buffers (a whole frame, a read slab): posting
    // them would clone all of it, so copy them into buffers of their own and move those
    const job: UnblindJob = { id: this.nextId++, b: b.slice(), terms: id.bytes.slice() }
    this.operations++
    return new Promise((resolve, reject) => {
      slot.pending.set(job.id, { resolve, reject })
      slot.worker.postMessage(job, [job.b.buffer, job.terms.buffer] as ArrayBuffer[])
    })
  }

  /** jobs queued or running, over all workers */
  get pending (): number {
    return this.slots.reduce((sum, s) => sum + s.pending.size, 0)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all(this.slots.map(async s => s.worker.terminate()))
    for (const s of this.slots) this.fail(s, new Error('the unblind pool is closed'))
  }

  private spawn (): Slot {
    // the process's code cache (stripped TypeScript, bytecode) serves the workers too: without
    // it each worker loads Node's TypeScript stripper again, ~10 MB resident per worker
    const worker = new Worker(WORKER, { workerData: { privateKey: this.privateKey }, env: compileCacheEnv() })
    const slot: Slot = { worker, pending: new Map() }
    // an idle pool does not keep the process alive: the role closes it on stop
    worker.unref()
    worker.on('message', (result: UnblindResult) => {
      const job = slot.pending.get(result.id)
      if (job == null) return
      slot.pending.delete(result.id)
      if ('z' in result) job.resolve(result.z)
      else if (result.error === 'exponent') job.reject(new ExponentError(result.message))
      else if (result.error === 'range') job.reject(new OutOfRangeError(result.message))
      else job.reject(new Error(`unblind worker: ${result.message}`))
    })
    worker.on('error', err => { this.fail(slot, err) })
    worker.on('exit', () => {
      this.fail(slot, new Error('an unblind worker stopped'))
      // a worker that died is replaced; its jobs failed and their requests wrote nothing
      if (!this.closed) {
        const index = this.slots.indexOf(slot)
        if (index >= 0) this.slots[index] = this.spawn()
      }
    })
    return slot
  }

  private fail (slot: Slot, err: Error): void {
    for (const job of slot.pending.values()) job.reject(err)
    slot.pending.clear()
  }
}
