// The ledger's connections to PostgreSQL: a pool that reconnects by itself (a broken
// connection is dropped, the next request opens a new one), a timeout on connecting and
// on every statement, BIGINT read as an exact JS number, and one place that tells a
// database gone away (ERR_LEDGER_UNAVAILABLE, retryable) from a refusal or a bug.
import { Socket } from 'node:net'
import pg from 'pg'
import { LedgerFaultError, LedgerUnavailableError, LedgerUrlError } from './errors.ts'
import type { PoolClient, PoolConfig } from 'pg'
import type { Logger } from '@libp2p/interface'

export interface PgLedgerOptions {
  /** postgres://user@host:port/database (no password: see `password`) */
  url: string
  /** from a file or the environment (see open-ledger.ts); none for trust or peer authentication */
  password?: string
  /** most connections at once (default 10) */
  max?: number
  /** give up connecting after this long (default 5 s) */
  connectTimeoutMs?: number
  /** give up on one statement after this long (default 15 s) */
  statementTimeoutMs?: number
}

const INT8_OID = 20

/** BIGINT as a JS number; a value past 2^53 − 1 would lose digits, so it is an error */
function parseBigint (text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n)) throw new LedgerFaultError(`ledger value ${text} is beyond 2^53 − 1`)
  return n
}

export interface LedgerPool {
  pool: pg.Pool
  /** ends the pool, and any socket a failed login left open (pg does not close those itself) */
  end: () => Promise<void>
}

export function createPgPool (options: PgLedgerOptions, log: Logger): LedgerPool {
  const sockets = new Set<Socket>()
  const statementTimeoutMs = options.statementTimeoutMs ?? 15_000
  const config: PoolConfig = {
    ...connectionFields(options.url),
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    // the server ends a statement running past this; the client stops waiting a little later
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 5000,
    application_name: 'keyfair-escrow',
    stream: () => {
      const socket = new Socket()
      sockets.add(socket)
      socket.once('close', () => { sockets.delete(socket) })
      return socket
    },
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') => oid === INT8_OID && format !== 'binary'
        ? parseBigint
        : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser
    }
  }
  // none given: an empty one, so a server asking for a password refuses at once (rather than a client-side fault that leaves the socket open)
  config.password = options.password ?? ''
  const pool = new pg.Pool(config)
  // an idle connection the server dropped: the pool discards it; without a listener it would end the process
  pool.on('error', err => { log('idle ledger connection lost: %s', describe(err)) })
  return {
    pool,
    end: async () => {
      await pool.end()
      for (const socket of sockets) socket.destroy()
    }
  }
}

/** host, port, user and database of a postgres:// URL (a password in it is refused earlier) */
export function connectionFields (url: string): Pick<PoolConfig, 'host' | 'port' | 'user' | 'database'> {
  const u = new URL(url)
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new LedgerUrlError(u.protocol)
  const fields: Pick<PoolConfig, 'host' | 'port' | 'user' | 'database'> = { host: decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')) || '127.0.0.1', port: u.port === '' ? 5432 : Number(u.port) }
  if (u.username !== '') fields.user = decodeURIComponent(u.username)
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''))
  if (database !== '') fields.database = database
  return fields
}

/** SQLSTATEs and socket errors that mean the database is not there now (or not anymore) */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08007'
])
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|Query read timeout|connection timeout|the database system is/i
/** a serialisation failure or deadlock: the transaction is rolled back and is safe to run again */
const RETRY_CODES = new Set(['40001', '40P01'])

export function isUnavailable (err: unknown): boolean {
  if (err instanceof LedgerUnavailableError) return true
  const e = err as { code?: unknown, message?: unknown } | null
  if (e == null) return false
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true
  if (err instanceof AggregateError) return err.errors.some(isUnavailable)
  return typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)
}

function describe (err: unknown): string {
  const e = err as { code?: unknown, message?: unknown } | null
  return String(e?.code ?? e?.message ?? err)
}

export type IsolationLevel = 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE'

export interface TransactionOptions {
  isolation?: IsolationLevel
  readOnly?: boolean
}

const MAX_ATTEMPTS = 5

/**
 * Runs `fn` in one transaction on one pooled connection: all of it commits or none of
 * it does. A deadlock or serialisation failure runs it again (up to 5 times); a database
 * that went away rejects with LedgerUnavailableError. If the connection breaks during
 * COMMIT the outcome is unknown to this side: the caller gets ERR_LEDGER_UNAVAILABLE and
 * a retry of the same request finds what was committed (purchase ids are unique).
 */
export async function inTransaction<T> (pool: pg.Pool, fn: (client: PoolClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  return retryingRollbacks(async () => once(pool, fn, options))
}

/** Runs `attempt` again (up to 5 times in all) while it fails with a deadlock or serialisation failure */
async function retryingRollbacks<T> (attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt()
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code === 'string' && RETRY_CODES.has(code) && n < MAX_ATTEMPTS) continue
      throw err
    }
  }
}

async function once<T> (pool: pg.Pool, fn: (client: PoolClient) => Promise<T>, options: TransactionOptions): Promise<T> {
  let client: PoolClient
  try {
    client = await pool.connect()
  } catch (err) {
    throw isUnavailable(err) ? unavailable(err) : err
  }
  // a checked-out connection has no listener of its own: without one, a drop between statements ends the process
  let broken: unknown
  const onError = (err: unknown): void => { broken = err }
  client.on('error', onError)
  try {
    await client.query(`BEGIN ISOLATION LEVEL ${options.isolation ?? 'READ COMMITTED'}${options.readOnly === true ? ' READ ONLY' : ''}`)
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    if (broken == null && !isUnavailable(err)) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => { broken = rollbackErr })
    } else {
      broken ??= err
    }
    throw isUnavailable(err) ? unavailable(err) : err
  } finally {
    client.off('error', onError)
    // a broken connection is destroyed, not returned to the pool
    client.release(broken != null ? asError(broken) : undefined)
  }
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

export function unavailable (err: unknown): LedgerUnavailableError {
  if (err instanceof LedgerUnavailableError) return err
  return new LedgerUnavailableError(`the escrow ledger's database is unavailable (${describe(err)}): retry later`, { cause: err })
}

/**
 * A statement the server prepares once per connection (by its name) and only binds after:
 * for the statements every request runs, parsing and planning would cost more than the work.
 */
export interface Statement {
  name: string
  text: string
}

/** Runs a read on any pooled connection, mapping a database gone away to LedgerUnavailableError */
export async function query<R extends pg.QueryResultRow> (pool: pg.Pool, sql: string | Statement, params: unknown[] = []): Promise<R[]> {
  try {
    return (await pool.query<R>(typeof sql === 'string' ? { text: sql, values: params } : { ...sql, values: params })).rows
  } catch (err) {
    throw isUnavailable(err) ? unavailable(err) : err
  }
}

/**
 * Runs one statement as its own transaction (no BEGIN: one round trip); a deadlock or
 * serialisation failure rolled it back whole, so it runs again (up to 5 times).
 */
export async function statement<R extends pg.QueryResultRow> (pool: pg.Pool, sql: Statement, params: unknown[]): Promise<R[]> {
  return retryingRollbacks(async () => query<R>(pool, sql, params))
}
