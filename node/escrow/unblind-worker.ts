// One worker thread of UnblindPool (pool.ts): holds the escrow's private key and
// answers { id, b, terms } with z = b^d_T mod n, or with the kind of its refusal.
// Each worker has a heap of its own: it imports only the key's crypto, not the escrow's
// objects and codecs (with those, each worker added ~47 MB to the resident memory instead of ~32).
import { flushCompileCache } from 'node:module'
import { parentPort, workerData } from 'node:worker_threads'
import { ExponentError, OutOfRangeError } from '../../device/crypto/errors.ts'
import { PriceBoundKey } from './price-key.ts'
import type { KeyObject } from 'node:crypto'

export interface UnblindJob {
  id: number
  b: Uint8Array
  /** binary CID of the terms */
  terms: Uint8Array
}

export type UnblindResult = { id: number, z: Uint8Array } | { id: number, error: 'exponent' | 'range' | 'failed', message: string }

const port = parentPort
if (port == null) throw new Error('unblind-worker.ts runs as a worker thread')
const key = new PriceBoundKey((workerData as { privateKey: KeyObject }).privateKey)
// this worker's modules are loaded: their cache entries go to disk now, not only when the escrow stops cleanly
flushCompileCache()

port.on('message', (job: UnblindJob) => {
  let result: UnblindResult
  try {
    result = { id: job.id, z: key.unblindForTermsCid(job.b, job.terms) }
  } catch (err: any) {
    const error = err instanceof ExponentError ? 'exponent' : err instanceof OutOfRangeError ? 'range' : 'failed'
    result = { id: job.id, error, message: String(err?.message ?? err) }
  }
  // z is a buffer of its own: move it rather than copy it
  if ('z' in result && result.z.byteOffset === 0 && result.z.byteLength === result.z.buffer.byteLength) port.postMessage(result, [result.z.buffer as ArrayBuffer])
  else port.postMessage(result)
})
