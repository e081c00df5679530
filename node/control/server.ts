import { logger } from '@libp2p/logger'
import { KeyfairError } from '../../protocols/errors.ts'
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.ts'
import { logFilePath } from '../log/levels.ts'
import { progressLine } from './progress.ts'
import { api, isCallName } from './api.ts'
import { UiHandler } from './ui/handler.ts'
import type { ControlRoutes, Route } from './routes.ts'
import type { Repo } from '../repo.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

// Not `import … from 'node:http'`: an ES import of a built-in reads all of its exports, and
// node:http's WebSocket, CloseEvent and MessageEvent are getters that load Node's bundled
// undici (~15 MB resident in every node, measured). The CommonJS object reads only this.
const { createServer } = process.getBuiltinModule('node:http')

/** Content type of streamed answers: progress lines, then the result */
export const NDJSON = 'application/x-ndjson'

export const API_PREFIX = '/api/v1/'
const MAX_BODY_BYTES = 64 * 1024

export interface ControlServerInit {
  repo: Repo
  routes: ControlRoutes
  port: number
}

const STATUS_BY_CODE: Record<string, number> = {
  [UnauthorizedError.code]: 401,
  [ForbiddenError.code]: 403,
  [BadRequestError.code]: 400,
  ERR_BAD_MESSAGE: 400,
  [NotFoundError.code]: 404
}

/**
 * The local control API: JSON over HTTP on 127.0.0.1 only, every request
 * carrying the repo's token as a bearer token, or, from the web UI's own page, its
 * session cookie and proof. The Host header must name the loopback address, so a
 * web page cannot reach it by DNS rebinding.
 */
export class ControlServer {
  private readonly repo: Repo
  private readonly routes: ControlRoutes
  private readonly port: number
  private readonly log = logger('keyfair:control')
  private readonly ui: UiHandler
  private server?: Server
  url = ''

  constructor (init: ControlServerInit) {
    this.repo = init.repo
    this.routes = init.routes
    this.port = init.port
    this.ui = new UiHandler({
      play: async (content, output, signal) => this.routes.play(api.play.validate({ content, output }), signal, () => {})
    })
  }

  async start (): Promise<void> {
    const server = createServer((req, res) => {
      // one connection per call: a kept-alive socket that the server closes after 5 idle
      // seconds just as a busy client reuses it fails that call with ECONNRESET (a bench
      // run lost its swarm to this while 50 nodes started on two cores)
      res.setHeader('connection', 'close')
      void this.handle(req, res)
    })
    server.headersTimeout = 10_000
    server.requestTimeout = 0 // `find` may legitimately run for its whole time budget
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    this.ui.listening(this.url)
    await this.repo.writeApiEndpoint({ url: this.url, pid: process.pid })
    this.log('control API on %s', this.url)
  }

  async stop (): Promise<void> {
    await this.repo.removeApiEndpoint()
    const server = this.server
    this.server = undefined
    if (server == null) return
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController()
    res.once('close', () => { if (!res.writableFinished) controller.abort() })
    try {
      this.checkHost(req)
      const url = new URL(req.url ?? '/', this.url)
      if (url.pathname === '/ui' || url.pathname.startsWith('/ui/')) return await this.ui.handle(req, res, url, controller.signal)
      const byToken = await this.authenticate(req)
      if (!url.pathname.startsWith(API_PREFIX)) throw new NotFoundError(`no such endpoint ${url.pathname}`)
      const name = url.pathname.slice(API_PREFIX.length)
      if (name === 'ui.login') {
        // a login address is for whoever holds the repo's token, not for a page
        if (!byToken) throw new ForbiddenError('a login address is given only for the control API token')
        if (req.method !== 'POST') throw new BadRequestError('use POST')
        return send(res, 200, this.ui.loginAddress())
      }
      const route = isCallName(name) && Object.hasOwn(this.routes, name) ? (this.routes as Record<string, Route | undefined>)[name] : undefined
      if (route == null || !isCallName(name)) throw new NotFoundError(`no such endpoint ${url.pathname}`)
      if (req.method !== 'POST') throw new BadRequestError('use POST')
      // the contract checks the request's shape before the route sees it
      const request = api[name].validate(await readJson(req))
      // a client asking for NDJSON gets progress lines, then one result or error line
      const streaming = req.headers.accept === NDJSON
      if (streaming) res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' })
      const progress = streaming ? (event: unknown) => { writeProgress(res, event) } : () => {}
      const result = await route(request, controller.signal, progress)
      if (streaming) res.end(JSON.stringify({ result }) + '\n')
      else send(res, 200, result)
    } catch (err: any) {
      let error: Record<string, unknown> = { code: 'ERR_INTERNAL', message: `internal error (see the node log ${logFilePath(this.repo.path)})` }
      let status = 500
      if (err instanceof KeyfairError) {
        // a typed refusal is the request's problem, not the server's
        // its details (every escrow of a refused purchase, say) beside the code
        error = { ...err.details, code: err.code, message: err.message }
        status = STATUS_BY_CODE[err.code] ?? 422
      } else {
        this.log.error('control request %s failed - %e', req.url, err)
      }
      if (res.headersSent && !res.destroyed) res.end(JSON.stringify({ error }) + '\n')
      else send(res, status, { error })
    }
  }

  private checkHost (req: IncomingMessage): void {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '')
    if (host !== '127.0.0.1' && host !== 'localhost') throw new UnauthorizedError('the control API only answers requests addressed to 127.0.0.1')
  }

  /** True for the repo's token; a browser's session passes the web UI's checks instead */
  private async authenticate (req: IncomingMessage): Promise<boolean> {
    const header = req.headers.authorization
    if (header == null && req.headers.cookie != null) {
      this.ui.checkCall(req)
      return false
    }
    if (header == null || !header.startsWith('Bearer ')) throw new UnauthorizedError('missing control API token')
    if (!(await this.repo.checkToken(header.slice('Bearer '.length)))) throw new UnauthorizedError('wrong control API token')
    return true
  }
}

async function readJson (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > MAX_BODY_BYTES) throw new BadRequestError(`request body over ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (err) {
    throw new BadRequestError('request body is not JSON', { cause: err })
  }
}

/** One progress line: a typed event's known fields, or nothing at all */
function writeProgress (res: ServerResponse, event: unknown): void {
  const line = progressLine(event)
  if (line != null && !res.destroyed) res.write(JSON.stringify({ progress: line }) + '\n')
}

function send (res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent || res.destroyed) return
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}
