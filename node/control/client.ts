import { KeyfairError } from '../../protocols/errors.ts'
import { NodeNotRunningError, UnauthorizedError } from '../errors.ts'
import { API_PREFIX } from './server.ts'
import { isProcessAlive } from '../repo.ts'
import type { Repo } from '../repo.ts'

export interface CallOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

/** An error the node answered with; `code` is the node's stable code. */
export class ControlApiError extends KeyfairError {}

/** Talks to the node running on a repo, through the address and token in that repo. */
export class ControlClient {
  private readonly repo: Repo

  constructor (repo: Repo) {
    this.repo = repo
  }

  async call<T = any> (endpoint: string, body: unknown = {}, options: CallOptions = {}): Promise<T> {
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
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.any(signals)
      })
    } catch (err: any) {
      // the api file names a closed port: the node died and its pid was reused
      if (err?.cause?.code === 'ECONNREFUSED' || err?.cause?.code === 'ECONNRESET') throw new NodeNotRunningError(this.repo.path, { cause: err })
      throw err
    }
    const value: any = await res.json().catch(() => ({}))
    if (res.ok) return value as T
    const code = typeof value?.error?.code === 'string' ? value.error.code : 'ERR_HTTP_' + res.status
    const message = typeof value?.error?.message === 'string' ? value.error.message : `control API answered ${res.status}`
    if (code === UnauthorizedError.code) throw new UnauthorizedError(`${message} (token file: ${this.repo.tokenFile})`)
    throw new ControlApiError(message, code)
  }
}
