/**
 * Which providers a download keeps asking for ranges. It starts with every provider, so
 * each is tried (and a lying one caught) at once. Then, one window of bytes at a time, it
 * rests the provider that delivered least, for as long as the download is no slower
 * without it; the first time resting one makes it slower, that one is called back and the
 * set stays. "Slower" takes two windows in a row: on a busy machine one window of 16 MiB
 * can run 30% below the last by chance, and a single such window used to call a rested
 * provider back and keep all three local providers for a whole download (77 and 98 MB/s
 * against 125–128 with the rests kept, in one bench run). More providers help while
 * each adds capacity the buyer can use (their own uplinks); they hurt when they only
 * compete with the buyer for the same CPU, as providers on the buyer's own machine do
 * once the buyer is the bottleneck.
 */
export interface TrimDecision {
  /** stops taking new ranges (it finishes the ones it has) */
  rest?: string
  /** takes ranges again */
  recall?: string
}

export interface ProviderTrimInit {
  providers: string[]
  /** bytes per measurement window */
  windowBytes: number
  now: number
  /** a window this fraction as fast as the last before the rest still counts as no slower (noise) */
  tolerance?: number
}

export class ProviderTrim {
  readonly active: Set<string>
  private readonly windowBytes: number
  private readonly tolerance: number
  private window: { start: number, bytes: number, by: Map<string, number> }
  private lastRate?: number
  private resting?: string
  /** the window after the current rest was slower: one more decides */
  private slowerOnce = false
  private isSettled = false
  /** each provider's whole ranges: bytes, and the time from asking to the last chunk */
  private readonly paces = new Map<string, { bytes: number, ms: number }>()

  constructor (init: ProviderTrimInit) {
    this.active = new Set(init.providers)
    this.windowBytes = init.windowBytes
    this.tolerance = init.tolerance ?? 0.9
    this.window = { start: init.now, bytes: 0, by: new Map() }
    this.isSettled = this.active.size < 2
  }

  /** Counts a verified chunk; at the end of a window, says whom to rest or call back */
  delivered (provider: string, bytes: number, now: number): TrimDecision | undefined {
    const w = this.window
    w.bytes += bytes
    w.by.set(provider, (w.by.get(provider) ?? 0) + bytes)
    if (this.isSettled || w.bytes < this.windowBytes) return undefined
    const rate = w.bytes / Math.max(now - w.start, 1e-3)
    this.window = { start: now, bytes: 0, by: new Map() }
    if (this.resting != null) {
      const rested = this.resting
      if (rate < (this.lastRate ?? 0) * this.tolerance) {
        // once may be chance: the rest stands for one more window before it is judged slower
        if (!this.slowerOnce) {
          this.slowerOnce = true
          return undefined
        }
        this.resting = undefined
        this.active.add(rested)
        this.isSettled = true
        return { recall: rested }
      }
      this.resting = undefined
    }
    this.slowerOnce = false
    this.lastRate = rate
    if (this.active.size < 2) {
      this.isSettled = true
      return undefined
    }
    const slowest = this.slowest(w.by)
    this.active.delete(slowest)
    this.resting = slowest
    return { rest: slowest }
  }

  /** A whole range from `provider`: `bytes` in `ms` from asking for it to its last chunk */
  ranged (provider: string, bytes: number, ms: number): void {
    const pace = this.paces.get(provider) ?? { bytes: 0, ms: 0 }
    pace.bytes += bytes
    pace.ms += ms
    this.paces.set(provider, pace)
  }

  /**
   * The provider to rest: the slowest to serve its ranges, once every active one has served
   * one; else the one that delivered least in the window. A window's shares alone are lumpy
   * (ranges of 4 MiB finish whole or not at all) and rested a fast provider by chance.
   */
  private slowest (window: Map<string, number>): string {
    const active = [...this.active]
    const paces = active.map(id => this.paces.get(id))
    if (paces.every(p => p != null && p.ms > 0)) {
      const rates = paces.map(p => p!.bytes / p!.ms)
      return active[rates.indexOf(Math.min(...rates))]!
    }
    let slowest = active[0]!
    for (const id of active) if ((window.get(id) ?? 0) < (window.get(slowest) ?? 0)) slowest = id
    return slowest
  }

  /** No more rests or recalls: the set of active providers is final */
  get settled (): boolean {
    return this.isSettled
  }

  /** A provider that failed: neither active nor resting any more */
  remove (provider: string): void {
    this.active.delete(provider)
    if (this.resting === provider) {
      this.resting = undefined
      this.slowerOnce = false
    }
  }

  /** Every provider still usable takes ranges again (when all active ones failed) */
  recallAll (providers: Iterable<string>): void {
    for (const id of providers) this.active.add(id)
    this.resting = undefined
    this.slowerOnce = false
    this.isSettled = true
  }
}
