/** A signal that aborts after `ms`, or with any of the callers' signals, whichever comes first */
export function timeoutSignal (ms: number, ...callers: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any([AbortSignal.timeout(ms), ...callers.filter((s): s is AbortSignal => s != null)])
}

/**
 * A time limit on one wait that is over as soon as the wait is: `clear()` stops its timer
 * and lets go of the caller's signal. `AbortSignal.timeout` cannot be stopped, so a wait per
 * frame would leave a timer per frame to fire long after, each building a DOMException and
 * keeping its signals alive until then.
 */
export class Deadline {
  readonly signal: AbortSignal
  private readonly controller = new AbortController()
  private readonly timer: ReturnType<typeof setTimeout>
  private readonly caller: AbortSignal | undefined
  private expired = false

  constructor (ms: number, caller?: AbortSignal) {
    this.signal = this.controller.signal
    this.caller = caller
    this.timer = setTimeout(this.expire, ms)
    // like AbortSignal.timeout: a pending limit alone does not keep the process alive
    this.timer.unref?.()
    if (caller?.aborted === true) this.onCallerAbort()
    else caller?.addEventListener('abort', this.onCallerAbort, { once: true })
  }

  /** Whether the time ran out (rather than the caller aborting) */
  get timedOut (): boolean {
    return this.expired
  }

  clear (): void {
    clearTimeout(this.timer)
    this.caller?.removeEventListener('abort', this.onCallerAbort)
  }

  private readonly expire = (): void => {
    this.expired = true
    this.caller?.removeEventListener('abort', this.onCallerAbort)
    this.controller.abort(new DOMException('the time limit ran out', 'TimeoutError'))
  }

  private readonly onCallerAbort = (): void => {
    clearTimeout(this.timer)
    this.controller.abort(this.caller?.reason)
  }
}
