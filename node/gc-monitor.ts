import { PerformanceObserver, constants } from 'node:perf_hooks'
import type { PerformanceEntry } from 'node:perf_hooks'
import type { Startable } from '@libp2p/interface'

/** The node process's memory and V8's collections since the node started */
export interface ProcessMemory {
  /** resident set size of the node's process (not its device's) */
  rssBytes: number
  /** V8's heap in use, live objects and garbage not yet collected */
  heapUsedBytes: number
  /** bytes held by ArrayBuffers and Buffers, outside V8's heap */
  arrayBufferBytes: number
  /** full (mark-compact) collections */
  fullCollections: number
  /** young-generation collections */
  youngCollections: number
  /** time the node's thread spent paused in those collections */
  collectionMs: number
}

/**
 * Counts V8's collections in this process as Node reports them (a `gc` performance entry
 * each). A node whose full collections climb during a download is paying for its buffers
 * there (docs/performance.md); the count makes that visible without a trace.
 */
export class GcMonitor implements Startable {
  private observer?: PerformanceObserver
  private full = 0
  private young = 0
  private pausedMs = 0

  readonly [Symbol.toStringTag] = 'keyfair:gc-monitor'

  start (): void {
    if (this.observer != null) return
    this.observer = new PerformanceObserver(list => {
      for (const entry of list.getEntries()) this.count(entry)
    })
    this.observer.observe({ entryTypes: ['gc'] })
  }

  stop (): void {
    this.observer?.disconnect()
    this.observer = undefined
  }

  memory (): ProcessMemory {
    const usage = process.memoryUsage()
    return {
      rssBytes: usage.rss,
      heapUsedBytes: usage.heapUsed,
      arrayBufferBytes: usage.arrayBuffers,
      fullCollections: this.full,
      youngCollections: this.young,
      collectionMs: Math.round(this.pausedMs)
    }
  }

  private count (entry: PerformanceEntry): void {
    const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) this.full++
    else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) this.young++
    // incremental marking steps and weak callbacks pause the thread too
    this.pausedMs += entry.duration
  }
}
