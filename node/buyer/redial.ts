// Reaching a peer known only by its peer id, right after a restart (of this node or of that
// peer): this node's peer store and DHT routing table are still filling, so the first dial
// can find no address, and a connection to the peer's previous process can still look open.
// The buy dials again within its own time, rather than failing and leaving it to the user.
import { KeyfairError, TruncatedFrameError } from '../../protocols/errors.ts'
import type { Logger } from '@libp2p/interface'

/**
 * Tries stop this long after the first: enough for a restarted node's routing table to fill,
 * short enough that a peer that is really gone costs a buy little before another is asked
 */
export const REDIAL_WINDOW_MS = 6_000
const FIRST_PAUSE_MS = 200
const MAX_PAUSE_MS = 2_000

export interface RedialOptions {
  signal: AbortSignal
  log: Logger
  /** names the peer in the log */
  what: string
}

/**
 * Runs `attempt` (one request to a peer; it must be safe to send twice) until it is
 * answered, the peer refuses for good (a typed error: it did answer), the window is over, or
 * `signal` ends. A dial that
 * finds no address fails at once, so the pauses, not the tries, use the time.
 */
export async function withRedial<T> (attempt: (signal: AbortSignal) => Promise<T>, options: RedialOptions): Promise<T> {
  let pause = FIRST_PAUSE_MS
  const until = Date.now() + REDIAL_WINDOW_MS
  for (let tries = 1; ; tries++) {
    try {
      // no shorter bound per try: a peer that answers slowly (fetching a CRL first) is not cut off
      return await attempt(options.signal)
    } catch (err: any) {
      if (options.signal.aborted || !isUnreached(err) || Date.now() + pause > until) throw err
      options.log('%s not reached (try %d): %s; dialling again in %d ms', options.what, tries, err.code ?? err.name ?? err.message, pause)
      await sleep(pause, options.signal).catch(() => { throw err })
      pause = Math.min(pause * 2, MAX_PAUSE_MS)
    }
  }
}

/**
 * Refusals that say "not yet", not "no": a peer that restarted before its agency was back
 * cannot check a certificate's revocation until it has fetched the agency's list
 */
const NOT_YET = new Set(['ERR_AGENCY_UNREACHABLE', 'ERR_CRL_STALE'])

/** A failure to reach the peer, not its answer: libp2p's dial and stream errors, a stream cut short */
function isUnreached (err: unknown): boolean {
  if (!(err instanceof KeyfairError)) return true
  return err instanceof TruncatedFrameError || NOT_YET.has(err.code)
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', done)
      resolve()
    }, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
