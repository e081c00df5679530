// Active or standby: a process of an escrow whose ledger is on PostgreSQL serves only while
// it holds the escrow's lock (pg-leader.ts). A standby tries for the lock every second and
// activates when it gets it. An active process checks its lock every second and, the moment
// the lock's connection fails, is suspended: it refuses every request as retryable (the
// database is gone, as far as it knows) until it holds the lock again, or deactivates into a
// standby when another process got it first. So at most one process of an escrow answers at
// a time, as far as the database can tell.
import type { LeaderLock } from './pg-leader.ts'
import type { Logger } from '@libp2p/interface'

/** suspended: was active, lost its lock, refuses requests until it holds it again */
export type EscrowMode = 'active' | 'suspended' | 'standby'

export interface LeadershipInit {
  lock: LeaderLock
  /** starts serving: open the ledger, register the protocols (throws: the lock is let go) */
  activate: () => Promise<void>
  /** stops serving: unregister the protocols, close the ledger */
  deactivate: () => Promise<void>
  /** refuse every request (retryable) and stop writing, the protocols still registered */
  suspend: () => void
  /** answer again after a suspension */
  resume: () => void
  log: Logger
  /** how often a standby tries for the lock and an active process checks it (default 1 s) */
  pollMs?: number
}

export class Leadership {
  private readonly init: LeadershipInit
  private readonly pollMs: number
  private current: EscrowMode = 'standby'
  private changed = Date.now()
  private timer?: ReturnType<typeof setTimeout>
  private stopped = true
  /** activations, deactivations and checks, one after another */
  private busy: Promise<void> = Promise.resolve()
  private unreachableLogged = false

  constructor (init: LeadershipInit) {
    this.init = init
    this.pollMs = init.pollMs ?? 1000
    init.lock.onLost = reason => { void this.serial(async () => this.demote(reason)).catch(() => {}) }
  }

  get mode (): EscrowMode {
    return this.current
  }

  /** when the mode last changed */
  get since (): Date {
    return new Date(this.changed)
  }

  /** One try for the lock (a database that cannot be reached rejects), then the checks every second */
  async start (): Promise<EscrowMode> {
    this.stopped = false
    await this.serial(async () => { await this.attempt() })
    this.schedule()
    return this.current
  }

  /** Stops the checks, deactivates if active, and lets the lock go */
  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.busy
    try {
      if (this.current !== 'standby') await this.init.deactivate()
    } finally {
      this.setMode('standby')
      await this.init.lock.release()
    }
  }

  private schedule (): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      void this.serial(async () => this.tick()).catch(() => {}).finally(() => { this.schedule() })
    }, this.pollMs)
    this.timer.unref()
  }

  private async tick (): Promise<void> {
    if (this.stopped) return
    if (this.current === 'active') {
      if (!(await this.init.lock.check())) await this.demote('the lock is no longer held')
      return
    }
    try {
      const held = await this.attempt()
      this.unreachableLogged = false
      if (!held && this.current === 'suspended') {
        // another process holds the lock now: this one stands by
        this.setMode('standby')
        this.init.log('another process of this escrow took its lock: standing by')
        await this.init.deactivate()
      }
    } catch (err: any) {
      // once per outage, not every second
      if (!this.unreachableLogged) this.init.log.error('standby: cannot try for the escrow lock: %s', err.code ?? err.message)
      this.unreachableLogged = true
    }
  }

  /** one try for the lock; true once held and serving */
  private async attempt (): Promise<boolean> {
    if (!(await this.init.lock.tryAcquire())) return false
    if (this.current === 'suspended') {
      this.init.resume()
      this.setMode('active')
      this.init.log('active again: holds the escrow lock (key %s)', this.init.lock.key)
      return true
    }
    try {
      await this.init.activate()
    } catch (err) {
      await this.init.lock.release()
      throw err
    }
    this.setMode('active')
    this.init.log('active: holds the escrow lock (key %s)', this.init.lock.key)
    return true
  }

  private async demote (reason: string): Promise<void> {
    if (this.current !== 'active') return
    this.setMode('suspended')
    this.init.suspend()
    this.init.log.error('lost the escrow lock (%s): refusing requests until it is held again', reason)
    await this.init.lock.release()
  }

  private setMode (mode: EscrowMode): void {
    if (mode !== this.current) this.changed = Date.now()
    this.current = mode
  }

  private async serial (fn: () => Promise<void>): Promise<void> {
    const next = this.busy.then(fn)
    this.busy = next.catch(() => {})
    return next
  }
}
