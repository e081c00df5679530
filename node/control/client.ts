import { NodeNotRunningError, UnauthorizedError } from '../errors.ts'
import { ControlApiError, TruncatedAnswerError } from './errors.ts'
import { API_PREFIX, NDJSON } from './server.ts'
import { isProcessAlive } from '../repo.ts'
import type { Repo } from '../repo.ts'
import type { AnswerOf, CallName, ProgressOf, RequestOf, StreamName } from './api.ts'

/** A call's request, which may be left out when the call needs nothing, then its options */
export type ClientCallArgs<N extends CallName> = Record<string, never> extends RequestOf<N>
  ? [request?: RequestOf<N>, options?: CallOptions]
  : [request: RequestOf<N>, options?: CallOptions]

export interface CallOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

export { ControlApiError }

/** Talks to the node running on a repo, through the address and token in that repo. */
export class ControlClient {
  private readonly repo: Repo

  constructor (repo: Repo) {
    this.repo = repo
  }

  /** Like `call`, with the node's progress events as they come (a long `buy`, a `publish`) */
  async stream<N extends StreamName> (endpoint: N, request: RequestOf<N>, onProgress: (event: ProgressOf<N>) => void, options: CallOptions = {}): Promise<AnswerOf<N>> {
    const res = await this.request(endpoint, request, options, NDJSON)
    if (!res.ok || res.headers.get('content-type') !== NDJSON) return this.answer<AnswerOf<N>>(res)
    let buffered = ''
    const decoder = new TextDecoder()
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(piece, { stream: true })
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, newline))
        buffered = buffered.slice(newline + 1)
        if ('progress' in line) onProgress(line.progress)
        else if ('result' in line) return line.result as AnswerOf<N>
        else throw this.failure(line, res.status)
      }
    }
    throw new TruncatedAnswerError()
  }

  /** One call of the contract in api.ts: its request and answer types are the call's own */
  async call<N extends CallName> (endpoint: N, ...[request, options]: ClientCallArgs<N>): Promise<AnswerOf<N>> {
    return this.answer<AnswerOf<N>>(await this.request(endpoint, request ?? {}, options ?? {}))
  }

  private async answer<T> (res: Response): Promise<T> {
    const value: any = await res.json().catch(() => ({}))
    if (res.ok) return value as T
    throw this.failure(value, res.status)
  }

  private failure (value: any, status: number): Error {
    const code = typeof value?.error?.code === 'string' ? value.error.code : 'ERR_HTTP_' + status
    const message = typeof value?.error?.message === 'string' ? value.error.message : `control API answered ${status}`
    if (code === UnauthorizedError.code) return new UnauthorizedError(`${message} (token file: ${this.repo.tokenFile})`)
    const error = new ControlApiError(message, code)
    const { code: _code, message: _message, ...details } = value?.error ?? {}
    if (Object.keys(details).length > 0) error.details = details
    return error
  }

  private async request (endpoint: string, body: unknown, options: CallOptions, accept?: string): Promise<Response> {
    await this.repo.assertInitialised()
    const api = await this.repo.readApiEndpoint()
    // a node killed with SIGKILL leaves its api file behind
    if (api == null || !isProcessAlive(api.pid)) throw new NodeNotRunningError(this.repo.path)
    const token = await this.repo.readToken()
    const signals = [AbortSignal.timeout(options.timeoutMs ?? 30_000)]
    if (options.signal != null) signals.push(options.signal)
    let res: Response
    try {
      res = await fetch(`${api.url}${API_PREFIX}${endpoint}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(accept != null ? { accept } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.any(signals)
      })
    } catch (err: any) {
      // the api file names a closed port: the node died and its pid was reused
      if (err?.cause?.code === 'ECONNREFUSED' || err?.cause?.code === 'ECONNRESET') throw new NodeNotRunningError(this.repo.path, { cause: err })
      throw err
    }
    return res
  }
}
