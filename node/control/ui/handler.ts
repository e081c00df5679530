// The web UI's side of the control server: its login, its session, its media and its files,
// and the checks a browser's call to the control API passes instead of the token.
import { timingSafeEqual } from 'node:crypto'
import { BadRequestError, ForbiddenError, UnauthorizedError } from '../../errors.ts'
import { PAGE_HEADERS, serveAsset } from './assets.ts'
import { mediaType, streamMedia } from './media.ts'
import { UiSessions } from './sessions.ts'
import type { PlayInto } from './media.ts'
import type { UiSession } from './sessions.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'

export const CSRF_HEADER = 'x-keyfair-csrf'
const SESSION_MAX_AGE_S = 12 * 60 * 60

export interface UiHandlerInit {
  /** plays a bought work into a path (the control API's own play call) */
  play: PlayInto
}

export class UiHandler {
  readonly sessions = new UiSessions()
  private readonly play: PlayInto
  private origin = ''
  private cookie = ''

  constructor (init: UiHandlerInit) {
    this.play = init.play
  }

  /** The server's address, once it listens: the only origin its page has */
  listening (url: string): void {
    this.origin = url
    // cookies are shared by every port of a host: each node names its own
    this.cookie = `keyfair_session_${new URL(url).port}`
  }

  /** A new one-time login address */
  loginAddress (): { url: string, expiresAt: string } {
    const { code, expiresAt } = this.sessions.issueCode()
    return { url: `${this.origin}/ui/login?code=${code}`, expiresAt: new Date(expiresAt).toISOString() }
  }

  async handle (req: IncomingMessage, res: ServerResponse, url: URL, signal: AbortSignal): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new BadRequestError('the web UI\'s pages take GET')
    const path = url.pathname.slice('/ui/'.length)
    if (url.pathname === '/ui') return redirect(res, '/ui/')
    if (path === 'login') return this.login(url, res)
    if (path === 'session') return sendJson(res, 200, { csrf: this.requireSession(req).csrf })
    if (path.startsWith('media/')) {
      // a HEAD would decrypt the whole work for nothing
      if (req.method !== 'GET') throw new BadRequestError('media takes GET')
      const session = this.requireSession(req)
      this.checkProof(session, url.searchParams.get('csrf'))
      return streamMedia(contentOf(path.slice('media/'.length)), mediaType(url.searchParams.get('type')), res, this.play, signal)
    }
    await serveAsset(path, res)
  }

  /** A browser's call to the control API: its session, its page's origin and its proof */
  checkCall (req: IncomingMessage): void {
    const session = this.requireSession(req)
    if (req.headers.origin !== this.origin) throw new ForbiddenError('a browser may call the control API only from the node\'s own page (Origin)')
    const site = req.headers['sec-fetch-site']
    if (site != null && site !== 'same-origin') throw new ForbiddenError('a cross-site request is refused')
    const proof = req.headers[CSRF_HEADER]
    this.checkProof(session, typeof proof === 'string' ? proof : null)
  }

  private login (url: URL, res: ServerResponse): void {
    const id = this.sessions.redeem(url.searchParams.get('code') ?? '')
    if (id == null) {
      return sendPage(res, 401, 'This login address was used already or has expired. Run <code>keyfair ui</code> for a new one.')
    }
    res.setHeader('set-cookie', `${this.cookie}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MAX_AGE_S}`)
    // a navigation by the node's own page, so the strict cookie goes with it
    sendPage(res, 200, 'Logged in. <a href="/ui/">Open keyfair</a>.', '<meta http-equiv="refresh" content="0; url=/ui/">')
  }

  private requireSession (req: IncomingMessage): UiSession {
    const session = this.sessions.session(cookieValue(req.headers.cookie, this.cookie))
    if (session == null) throw new UnauthorizedError('no web UI session: open the address `keyfair ui` prints')
    return session
  }

  private checkProof (session: UiSession, proof: string | null): void {
    const given = Buffer.from(proof ?? '')
    const expected = Buffer.from(session.csrf)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new ForbiddenError(`missing or wrong ${CSRF_HEADER} proof`)
  }
}

function contentOf (encoded: string): string {
  try {
    return decodeURIComponent(encoded)
  } catch {
    throw new BadRequestError('the media address does not name a content id')
  }
}

function cookieValue (header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return value.join('=')
  }
  return undefined
}

function redirect (res: ServerResponse, location: string): void {
  res.writeHead(308, { ...PAGE_HEADERS, location })
  res.end()
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { ...PAGE_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}

function sendPage (res: ServerResponse, status: number, message: string, head = ''): void {
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8">${head}<title>keyfair</title></head><body><p>${message}</p></body></html>`
  res.writeHead(status, { ...PAGE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}
