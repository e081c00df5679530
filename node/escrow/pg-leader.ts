// One answering process per escrow: a PostgreSQL session-level advisory lock, keyed by the
// escrow's peer id, held on a connection of its own for as long as the process is active.
// When that process dies its socket closes, the server ends the session and the lock is
// free for a standby. Keepalives on both ends make a vanished peer (host gone, network cut)
// noticed in seconds rather than the OS default of hours.
import { createHash } from 'node:crypto'
import { Socket } from 'node:net'
import pg from 'pg'
import { LedgerConnectError } from './errors.ts'
import { connectionFields, isUnavailable, unavailable } from './pg-pool.ts'
import type { Logger } from '@libp2p/interface'

export interface LeaderLockOptions {
  /** postgres://user@host:port/database (no password) */
  url: string
  password?: string
  /** the escrow's peer id: every process of one escrow contends for the same key */
  peerId: string
  /** give up connecting after this long (default 5 s) */
  connectTimeoutMs?: number
  /** a check of the held lock fails after this long (default 3 s) */
  checkTimeoutMs?: number
}

/** The advisory lock key of an escrow: 64 bits of a hash of its peer id, as a signed BIGINT */
export function leaderLockKey (peerId: string): string {
  return createHash('sha256').update(`keyfair-escrow-leader:${peerId}`).digest().readBigInt64BE(0).toString()
}

export class LeaderLock {
  readonly key: string
  private readonly options: LeaderLockOptions
  private readonly log: Logger
  private client?: pg.Client
  private socket?: Socket
  private held = false
  /** called once each time a held lock's connection fails */
  onLost?: (reason: string) => void

  constructor (options: LeaderLockOptions, log: Logger) {
    this.options = options
    this.log = log
    this.key = leaderLockKey(options.peerId)
  }

  get isHeld (): boolean {
    return this.held
  }

  /** Takes the lock if it is free; false while another session holds it */
  async tryAcquire (): Promise<boolean> {
    if (this.held) return true
    const client = await this.connect()
    try {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [this.key])
      this.held = rows[0]?.locked === true
      return this.held
    } catch (err) {
      this.drop(client, describe(err))
      throw isUnavailable(err) ? unavailable(err) : err
    }
  }

  /** Whether the held lock's connection still answers (a failure drops it: the lock is gone) */
  async check (): Promise<boolean> {
    const client = this.client
    if (!this.held || client == null) return false
    try {
      await client.query('SELECT 1')
      return this.held
    } catch (err) {
      this.drop(client, describe(err))
      return false
    }
  }

  /** Ends the lock's session: the server releases the lock with it */
  async release (): Promise<void> {
    this.held = false
    const client = this.client
    const socket = this.socket
    this.client = undefined
    this.socket = undefined
    await client?.end().catch(() => {})
    socket?.destroy()
  }

  private async connect (): Promise<pg.Client> {
    if (this.client != null) return this.client
    const socket = new Socket()
    const client = new pg.Client({
      ...connectionFields(this.options.url),
      password: this.options.password ?? '',
      keepAlive: true,
      keepAliveInitialDelayMillis: 2000,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5000,
      query_timeout: this.options.checkTimeoutMs ?? 3000,
      application_name: 'keyfair-escrow-lock',
      stream: () => socket
    })
    client.on('error', err => { this.drop(client, describe(err)) })
    client.on('end', () => { this.drop(client, 'connection ended') })
    try {
      await client.connect()
      // the server drops this session (and the lock) within ~11 s of the client vanishing without a FIN
      await client.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3')
    } catch (err) {
      await client.end().catch(() => {})
      socket.destroy()
      if (isUnavailable(err)) throw unavailable(err)
      throw new LedgerConnectError(`the ledger database refused the lock connection: ${describe(err)}`, { cause: err })
    }
    this.client = client
    this.socket = socket
    return client
  }

  /** Forgets a failed connection; tells onLost when it held the lock */
  private drop (client: pg.Client, reason: string): void {
    // a connection already replaced or released: nothing of it is held
    if (client !== this.client) return
    const wasHeld = this.held
    this.held = false
    const socket = this.socket
    this.client = undefined
    this.socket = undefined
    void client.end().catch(() => {})
    socket?.destroy()
    if (wasHeld) {
      this.log('escrow lock connection lost: %s', reason)
      this.onLost?.(reason)
    }
  }
}

function describe (err: unknown): string {
  const e = err as { code?: unknown, message?: unknown } | null
  return String(e?.code ?? e?.message ?? err)
}
