// The web UI's one client of the control API: every call's request, answer and progress types
// come from the node's own contract (node/control/api.ts), imported as types only.
import { KeyfairError } from '../../device/error-root.ts'
import type { AnswerOf, CallName, ProgressOf, RequestOf, StreamName } from '../../node/control/api.ts'

export type { AnswerOf, CallName, ProgressOf, RequestOf, StreamName }

const NDJSON = 'application/x-ndjson'
/** A plain call's answer must arrive within this long (a search's own budget is far shorter) */
const CALL_TIMEOUT_MS = 120_000
/** A streamed call fails when no line arrives for this long (progress comes every second or so) */
const STREAM_IDLE_MS = 120_000

/** A refusal or failure the node answered with: its stable code, its message, and its details */
export class CallError extends KeyfairError {
  override details: Record<string, unknown>

  constructor (code: string, message: string, details: Record<string, unknown> = {}) {
    super(message, code)
    this.details = details
  }
}

let csrf: string | undefined

/** Reads the session's CSRF token; a CallError ERR_UNAUTHORIZED without a session */
export async function openSession (): Promise<string> {
  const res = await fetch('/ui/session', { credentials: 'same-origin', signal: AbortSignal.timeout(CALL_TIMEOUT_MS) })
  const body: unknown = await res.json().catch(() => ({}))
  if (!res.ok) throw failure(body, res.status)
  const token = (body as { csrf?: unknown }).csrf
  if (typeof token !== 'string') throw new CallError('ERR_BAD_SESSION', 'the node answered no session token')
  csrf = token
  return token
}

/** The address that streams a bought work's plaintext from the sealed device, as `type` */
export function mediaUrl (content: string, type: string): string {
  const query = new URLSearchParams({ type, csrf: csrf ?? '' })
  return `/ui/media/${encodeURIComponent(content)}?${query.toString()}`
}

export async function call<N extends CallName> (name: N, request: RequestOf<N>, signal?: AbortSignal): Promise<AnswerOf<N>> {
  const res = await post(name, request, AbortSignal.any([AbortSignal.timeout(CALL_TIMEOUT_MS), ...(signal != null ? [signal] : [])]))
  return await answer<AnswerOf<N>>(res)
}

/** A call with progress: each event goes to `onProgress` as its line arrives, then the answer */
export async function stream<N extends StreamName> (
  name: N, request: RequestOf<N>, onProgress: (event: ProgressOf<N>) => void, signal?: AbortSignal
): Promise<AnswerOf<N>> {
  const idle = new AbortController()
  let timer = setTimeout(() => { idle.abort(new CallError('ERR_TIMEOUT', 'the node sent nothing for two minutes')) }, STREAM_IDLE_MS)
  const watch = (): void => {
    clearTimeout(timer)
    timer = setTimeout(() => { idle.abort(new CallError('ERR_TIMEOUT', 'the node sent nothing for two minutes')) }, STREAM_IDLE_MS)
  }
  try {
    const res = await post(name, request, AbortSignal.any([idle.signal, ...(signal != null ? [signal] : [])]), NDJSON)
    if (!res.ok || res.body == null || res.headers.get('content-type') !== NDJSON) return await answer<AnswerOf<N>>(res)
    const lines = readLines(res.body, watch)
    for await (const line of lines) {
      if ('progress' in line) onProgress(line.progress as ProgressOf<N>)
      else if ('result' in line) return line.result as AnswerOf<N>
      else throw failure(line, res.status)
    }
    throw new CallError('ERR_TRUNCATED_ANSWER', 'the node ended the answer early')
  } catch (err) {
    throw idle.signal.aborted && idle.signal.reason instanceof CallError ? idle.signal.reason : err
  } finally {
    clearTimeout(timer)
  }
}

/** Each complete JSON line of an NDJSON body, as the bytes arrive */
async function * readLines (body: ReadableStream<Uint8Array>, onData: () => void): AsyncGenerator<Record<string, unknown>> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffered = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      onData()
      buffered += decoder.decode(value, { stream: true })
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line: unknown = JSON.parse(buffered.slice(0, newline))
        buffered = buffered.slice(newline + 1)
        if (line != null && typeof line === 'object') yield line as Record<string, unknown>
      }
    }
  } finally {
    reader.releaseLock()
  }
}

async function post (name: string, request: unknown, signal: AbortSignal, accept?: string): Promise<Response> {
  try {
    return await fetch(`/api/v1/${name}`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-keyfair-csrf': csrf ?? '', ...(accept != null ? { accept } : {}) },
      body: JSON.stringify(request),
      signal
    })
  } catch (err) {
    if (signal.aborted && signal.reason instanceof CallError) throw signal.reason
    if (signal.aborted) throw new CallError('ERR_TIMEOUT', `the node did not answer ${name} in time`)
    throw new CallError('ERR_NODE_UNREACHABLE', `the node did not answer: ${err instanceof Error ? err.message : String(err)}`)
  }
}

async function answer<T> (res: Response): Promise<T> {
  const body: unknown = await res.json().catch(() => ({}))
  if (res.ok) return body as T
  throw failure(body, res.status)
}

/** The node's `{ error: { code, message, ...details } }` as a CallError */
function failure (body: unknown, status: number): CallError {
  const error = (body as { error?: Record<string, unknown> } | null)?.error ?? {}
  const { code, message, ...details } = error
  return new CallError(
    typeof code === 'string' ? code : `ERR_HTTP_${status}`,
    typeof message === 'string' ? message : `the node answered ${status}`,
    details
  )
}

/** Any thrown value as a CallError, so every failure shows a code and a reason */
export function asCallError (err: unknown): CallError {
  if (err instanceof CallError) return err
  if (err instanceof KeyfairError) return new CallError(err.code, err.message)
  return new CallError('ERR_UI', err instanceof Error ? err.message : String(err))
}
