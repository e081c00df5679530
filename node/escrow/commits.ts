// Group commit of holds (docs/protocol.md, Ledger): requests whose checks and private operation
// finish in the same turn of the event loop have their holds written in one ledger
// transaction, so one fsync serves them all; while a commit is in flight (PostgreSQL),
// the requests that arrive meanwhile wait and form the next one. Each caller's promise
// settles only after that transaction committed (or failed): an answer never leaves
// before its hold is durable, and a refused hold writes nothing (SQLite rolls back its
// savepoint; PostgreSQL decides the refusal before writing).
import type { HoldOutcome, LedgerStore, NewHold, OpenHoldResult } from './ledger-store.ts'

/** a bound on one transaction, so one commit never holds the thread for long */
export const MAX_GROUP_COMMIT = 256

interface Waiting {
  hold: NewHold
  resolve: (result: OpenHoldResult) => void
  reject: (err: unknown) => void
}

export class HoldCommitter {
  private readonly ledger: LedgerStore
  private readonly maxBatch: number
  private queue: Waiting[] = []
  private scheduled = false
  /** the commit in flight: one at a time, so a batch is one transaction in order */
  private committing?: Promise<void>
  /** commits and holds so far, for the log and tests */
  readonly stats = { commits: 0, holds: 0, largest: 0 }

  constructor (ledger: LedgerStore, options: { maxBatch?: number } = {}) {
    this.ledger = ledger
    this.maxBatch = options.maxBatch ?? MAX_GROUP_COMMIT
  }

  /** Opens the hold in the next group commit; resolves once it is durable */
  async open (hold: NewHold): Promise<OpenHoldResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ hold, resolve, reject })
      if (this.queue.length >= this.maxBatch) {
        void this.flush()
      } else if (!this.scheduled) {
        this.scheduled = true
        // after the I/O of this turn: every request that got this far in it joins
        setImmediate(() => { void this.flush() })
      }
    })
  }

  /** Commits everything waiting now, in one transaction; resolves when nothing is left waiting */
  async flush (): Promise<void> {
    this.scheduled = false
    while (this.committing != null) await this.committing
    if (this.queue.length === 0) return
    const batch = this.queue.splice(0, this.maxBatch)
    this.committing = this.commit(batch).finally(() => { this.committing = undefined })
    await this.committing
    // those that came while this one committed
    if (this.queue.length > 0 && !this.scheduled) await this.flush()
  }

  private async commit (batch: Waiting[]): Promise<void> {
    let outcomes: HoldOutcome[]
    try {
      outcomes = await this.ledger.openHolds(batch.map(w => w.hold))
    } catch (err) {
      // the transaction did not commit: nothing of it was written, no answer leaves
      for (const w of batch) w.reject(err)
      return
    }
    this.stats.commits++
    this.stats.holds += batch.length
    this.stats.largest = Math.max(this.stats.largest, batch.length)
    batch.forEach((w, i) => {
      const outcome = outcomes[i]
      if (outcome == null) w.reject(new Error('no outcome for a hold of the group commit'))
      else if ('error' in outcome) w.reject(outcome.error)
      else w.resolve(outcome.result)
    })
  }
}
