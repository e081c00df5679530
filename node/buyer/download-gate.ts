// The download of a buy waits here between its manifest and its chunks: the purchase is
// opened on the manifest and the price reserved at the escrows before any chunk is fetched.

export class DownloadGate {
  private readonly stored = Promise.withResolvers<void>()
  private readonly go = Promise.withResolvers<void>()

  constructor () {
    // either may never be awaited (a buy that fails first)
    this.stored.promise.catch(() => {})
    this.go.promise.catch(() => {})
  }

  /** resolves once the manifest is on disk */
  get manifest (): Promise<void> {
    return this.stored.promise
  }

  manifestStored (): void {
    this.stored.resolve()
  }

  /** lets the chunks come */
  open (): void {
    this.go.resolve()
  }

  /** Until open, or until `signal` ends */
  async opened (signal: AbortSignal): Promise<void> {
    signal.throwIfAborted()
    const aborted = Promise.withResolvers<never>()
    const onAbort = (): void => { aborted.reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.race([this.go.promise, aborted.promise])
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }
}
