// The node's handle on its sealed device: a child process speaking the framed wire
// of device/wire.ts on its stdin/stdout. Every byte that crosses can be observed with
// `tap` (the interface test records them all).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { logger } from '@libp2p/logger'
import { KeyfairError } from '../../protocols/errors.ts'
import { Deadline } from '../../protocols/toolkit/signals.ts'
import { FrameDecoder, encodeFrame } from '../../device/wire.ts'
import { compileCacheEnv, extraNodeFlags, roleProcessEnv } from '../config.ts'
import type { AnswerVerdict, CertificateRequests, DeviceCertificates, DeviceOperation, DeviceStatus, LicenceInfo, PlayProgress, PurchaseInfo, RenewalRequestInfo, SealedDevice } from '../../device/interface.ts'
import type { KdfParams } from '../../device/store/keystore.ts'
import type { DeviceReply } from '../../device/wire.ts'
import type { ChildProcessByStdio } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'

export const DEVICE_ENTRY = fileURLToPath(new URL('../../device/process.ts', import.meta.url))
/** Key generation at 4096 bits and scrypt at 2^17 fit well inside this */
export const DEFAULT_DEVICE_TIMEOUT_MS = 120_000

/** An error the device reported, with its stable code (ERR_WRONG_PASSPHRASE, …) */
export class DeviceError extends KeyfairError {}

export class DeviceUnavailableError extends KeyfairError {
  static readonly code = 'ERR_DEVICE_UNAVAILABLE'
  constructor (message: string) {
    super(message, DeviceUnavailableError.code)
  }
}

export interface DeviceClientInit {
  /** directory of the device's key store */
  store: string
  /** sees every byte written to ('out') and read from ('in') the device */
  tap?: (direction: 'in' | 'out', bytes: Uint8Array) => void
  timeoutMs?: number
}

export interface CallOptions {
  signal?: AbortSignal
  /** default DEFAULT_DEVICE_TIMEOUT_MS; 0 for none (a long play) */
  timeoutMs?: number
  onProgress?: (progress: PlayProgress) => void
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  onProgress?: (progress: PlayProgress) => void
}

export class DeviceClient implements SealedDevice {
  private readonly init: DeviceClientInit
  private readonly log = logger('keyfair:device:client')
  private child?: ChildProcessByStdio<Writable, Readable, null>
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private exited?: Promise<void>

  constructor (init: DeviceClientInit) {
    this.init = init
  }

  get pid (): number | undefined {
    return this.child?.pid
  }

  async start (): Promise<void> {
    if (this.child != null) return
    // the device shares the CLI's code cache, when the CLI enabled one, and a buyer's malloc settings
    const env = compileCacheEnv(roleProcessEnv(['buyer']))
    // a small young generation: played chunks are freed as they go instead of piling up
    const child = spawn(process.execPath, ['--max-semi-space-size=1', ...extraNodeFlags(), DEVICE_ENTRY, '--store', this.init.store], { stdio: ['pipe', 'pipe', 'inherit'], env })
    this.child = child
    const decoder = new FrameDecoder()
    child.stdout.on('data', (piece: Buffer) => {
      this.init.tap?.('in', piece)
      try {
        for (const reply of decoder.push(piece)) this.onReply(reply as DeviceReply)
      } catch (err: any) {
        this.log.error('device %d broke framing - %e', child.pid, err)
        child.kill('SIGKILL')
      }
    })
    child.stdin.on('error', () => {}) // an exit mid-write surfaces through 'exit' below
    this.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        this.log('device process %d exited (%s)', child.pid, signal ?? code)
        this.child = undefined
        for (const [id, p] of this.pending) {
          this.pending.delete(id)
          p.reject(new DeviceUnavailableError(`the device process exited (${signal ?? String(code)})`))
        }
        resolve()
      })
    })
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', err => { reject(new DeviceUnavailableError(`cannot start the device process: ${err.message}`)) })
    })
    this.log('device process %d started on %s', child.pid, this.init.store)
  }

  /** Closes the device's stdin so it locks and exits; kills it by pid if it does not */
  async stop (): Promise<void> {
    const child = this.child
    if (child == null) return
    child.stdin.end()
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
    await this.exited
    clearTimeout(timer)
  }

  async call<T> (op: DeviceOperation, args: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    const child = this.child
    if (child == null) throw new DeviceUnavailableError('the device process is not running')
    const id = this.nextId++
    const timeoutMs = options.timeoutMs ?? this.init.timeoutMs ?? DEFAULT_DEVICE_TIMEOUT_MS
    options.signal?.throwIfAborted()
    // a limit that ends with the call: no timer left to fire for every call answered
    const deadline = timeoutMs > 0 ? new Deadline(timeoutMs, options.signal) : undefined
    const signal = deadline?.signal ?? options.signal
    const frame = encodeFrame({ id, op, args: withoutUndefined(args) })
    return new Promise<T>((resolve, reject) => {
      const settle = (): void => {
        signal?.removeEventListener('abort', onAbort)
        deadline?.clear()
      }
      const onAbort = (): void => {
        settle()
        this.pending.delete(id)
        reject(new DeviceUnavailableError(`device operation ${op} did not finish in time`))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, {
        resolve: value => { settle(); resolve(value as T) },
        reject: err => { settle(); reject(err) },
        onProgress: options.onProgress
      })
      this.init.tap?.('out', frame)
      child.stdin.write(frame)
    })
  }

  async status (): Promise<DeviceStatus> { return this.call('status') }
  async initialise (args: { passphrase: string, bits?: number, kdf?: KdfParams }): Promise<{ deviceId: string }> { return this.call('initialise', args) }
  async unlock (args: { passphrase: string }): Promise<{ deviceId: string }> { return this.call('unlock', args) }
  async lock (): Promise<void> { await this.call('lock') }
  async certificateRequests (): Promise<CertificateRequests> { return this.call('certificateRequests') }
  async installCertificates (certificates: DeviceCertificates): Promise<void> { await this.call('installCertificates', { ...certificates }) }
  async certificates (): Promise<DeviceCertificates> { return this.call('certificates') }
  async beginPurchase (args: { offer: Uint8Array, manifest: Uint8Array, licence?: Uint8Array, buyer: string }): Promise<PurchaseInfo> { return this.call('beginPurchase', args) }
  async prepareShares (args: { offer: Uint8Array }): Promise<{ preparing: number }> { return this.call('prepareShares', args) }
  async requestShare (args: { purchase: string, j: number }): Promise<{ request: Uint8Array }> { return this.call('requestShare', args) }
  async requestShares (args: { purchase: string, js: number[] }): Promise<{ requests: Uint8Array[] }> { return this.call('requestShares', args) }
  async acceptAnswer (args: { purchase: string, j: number, answer: Uint8Array }): Promise<AnswerVerdict> { return this.call('acceptAnswer', args) }
  async completePurchase (args: { purchase: string }): Promise<LicenceInfo> { return this.call('completePurchase', args) }
  async receipt (args: { purchase: string }): Promise<{ receipt: Uint8Array }> { return this.call('receipt', args) }
  async dispute (args: { purchase: string, reason: 'key' | 'chunk', chunk?: { index: number, data: Uint8Array } }): Promise<{ dispute: Uint8Array }> { return this.call('dispute', args) }
  async purchase (args: { purchase: string }): Promise<PurchaseInfo> { return this.call('purchase', args) }
  async purchases (args: { offer?: string } = {}): Promise<PurchaseInfo[]> { return this.call('purchases', args) }
  async library (): Promise<LicenceInfo[]> { return this.call('library') }
  async renewalRequest (args: { content: string }): Promise<RenewalRequestInfo> { return this.call('renewalRequest', args) }
  async renew (args: { content: string, renewal: Uint8Array }): Promise<LicenceInfo> { return this.call('renew', args) }
  async play (args: { content: string, manifest: Uint8Array, input: string, output: string, available?: number }, onProgress?: (p: PlayProgress) => void, options: CallOptions = {}): Promise<{ bytes: number }> {
    return this.call('play', args, { timeoutMs: 0, ...options, onProgress })
  }

  async playFeed (args: { content: string, available?: number, stopped?: boolean }): Promise<void> { await this.call('playFeed', args) }

  private onReply (reply: DeviceReply): void {
    const p = this.pending.get(reply.id)
    if (p == null) return
    if ('progress' in reply) {
      p.onProgress?.(reply.progress as unknown as PlayProgress)
      return
    }
    this.pending.delete(reply.id)
    if (reply.ok) p.resolve(reply.result)
    else p.reject(new DeviceError(reply.error.message, reply.error.code))
  }
}

function withoutUndefined (args: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined))
}
