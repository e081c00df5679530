// A semaphore of bytes bounding a purchase's chunks in flight, whatever the speed of disk or network.

interface Waiter {
  bytes: number
  grant: () => void
}

export class ByteBudget {
  readonly capacity: number
  private held = 0
  private most = 0
  private readonly waiting: Waiter[] = []

  constructor (capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError(`a byte budget must be a positive whole number, not ${capacity}`)
    this.capacity = capacity
  }

  /** bytes reserved now */
  get inUse (): number {
    return this.held
  }

  /** the most bytes reserved at once */
  get peak (): number {
    return this.most
  }

  /**
   * Resolves once `bytes` are reserved, in the order asked. A request larger than the whole
   * budget is granted alone, once nothing else is held: it could never fit otherwise.
   */
  async reserve (bytes: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (bytes <= 0) return
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.take(bytes)
      return
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
      }
      const onAbort = (): void => {
        const at = this.waiting.indexOf(waiter)
        if (at >= 0) this.waiting.splice(at, 1)
        // a waiter at the head may have held back smaller ones behind it
        this.wake()
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(waiter)
    })
  }

  /** Gives back bytes reserved earlier, and admits the waiters that now fit */
  release (bytes: number): void {
    if (bytes <= 0) return
    if (bytes > this.held) throw new RangeError(`released ${bytes} bytes of ${this.held} held`)
    this.held -= bytes
    this.wake()
  }

  private fits (bytes: number): boolean {
    return this.held + bytes <= this.capacity || this.held === 0
  }

  private take (bytes: number): void {
    this.held += bytes
    this.most = Math.max(this.most, this.held)
  }

  private wake (): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const waiter = this.waiting.shift()!
      this.take(waiter.bytes)
      waiter.grant()
    }
  }
}
