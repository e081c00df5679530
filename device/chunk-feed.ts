// How a play follows a download still under way: the node tells the device how many
// chunks, from the first, are on disk, and the decryptor waits for each chunk before
// reading it. The device trusts nothing of this but the order: every chunk it reads is
// still authenticated, so a false count only makes the play fail.
import { FeedStoppedError, FeedTimeoutError } from './errors.ts'

/** How long a following play waits for the next chunk before giving up */
export const FEED_TIMEOUT_MS = 120_000

export class ChunkFeed {
  private available: number
  private readonly timeoutMs: number
  private stopped?: Error
  private waiter?: { index: number, resolve: () => void, reject: (err: Error) => void }

  constructor (available: number, timeoutMs: number = FEED_TIMEOUT_MS) {
    this.available = available
    this.timeoutMs = timeoutMs
  }

  /** `available` chunks, from the first, are on disk (a count lower than before is ignored) */
  advance (available: number): void {
    if (available <= this.available) return
    this.available = available
    const waiter = this.waiter
    if (waiter != null && waiter.index < available) {
      this.waiter = undefined
      waiter.resolve()
    }
  }

  /** The download stopped: the play waiting on it fails */
  stop (): void {
    this.stopped ??= new FeedStoppedError()
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(this.stopped)
  }

  /** Resolves once chunk `index` is on disk */
  async reach (index: number, signal?: AbortSignal): Promise<void> {
    if (index < this.available) return
    if (this.stopped != null) throw this.stopped
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { done(new FeedTimeoutError()) }, this.timeoutMs)
      const onAbort = (): void => { done(signal?.reason instanceof Error ? signal.reason : new FeedStoppedError()) }
      const done = (err?: Error): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (this.waiter?.index === index) this.waiter = undefined
        if (err != null) reject(err)
        else resolve()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiter = { index, resolve: () => { done() }, reject: done }
    })
  }
}
