// The web UI's sessions: a one-time login code (printed by `keyfair ui`) is exchanged for a
// session cookie, and each session has its own proof against cross-site requests. Held in the
// node's memory only: a restarted node asks for a new login.
import { createHash, randomBytes } from 'node:crypto'

const LOGIN_CODE_TTL_MS = 5 * 60_000
const SESSION_IDLE_MS = 12 * 60 * 60_000
const MAX_PENDING_CODES = 16

export interface UiSession {
  csrf: string
  lastSeen: number
}

/** Secrets are looked up by their hash, so a lookup's timing says nothing of a stored secret */
const digest = (secret: string): string => createHash('sha256').update(secret).digest('hex')
const token = (): string => randomBytes(32).toString('base64url')

export class UiSessions {
  private readonly codes = new Map<string, number>()
  private readonly sessions = new Map<string, UiSession>()
  private readonly now: () => number

  constructor (now: () => number = Date.now) {
    this.now = now
  }

  /** A new one-time login code, valid for five minutes */
  issueCode (): { code: string, expiresAt: number } {
    this.sweep()
    // a burst of `keyfair ui` calls cannot pile up codes: the oldest goes first
    while (this.codes.size >= MAX_PENDING_CODES) this.codes.delete(this.codes.keys().next().value!)
    const code = token()
    const expiresAt = this.now() + LOGIN_CODE_TTL_MS
    this.codes.set(digest(code), expiresAt)
    return { code, expiresAt }
  }

  /** Spends a login code: a new session's id, or undefined for an unknown, used or stale code */
  redeem (code: string): string | undefined {
    const key = digest(code)
    const expiresAt = this.codes.get(key)
    this.codes.delete(key)
    if (expiresAt == null || expiresAt < this.now()) return undefined
    const id = token()
    this.sessions.set(digest(id), { csrf: token(), lastSeen: this.now() })
    return id
  }

  /** The live session a cookie names, its idle time renewed */
  session (id: string | undefined): UiSession | undefined {
    if (id == null || id === '') return undefined
    const key = digest(id)
    const session = this.sessions.get(key)
    if (session == null) return undefined
    if (this.now() - session.lastSeen > SESSION_IDLE_MS) {
      this.sessions.delete(key)
      return undefined
    }
    session.lastSeen = this.now()
    return session
  }

  private sweep (): void {
    const now = this.now()
    for (const [key, expiresAt] of this.codes) if (expiresAt < now) this.codes.delete(key)
    for (const [key, s] of this.sessions) if (now - s.lastSeen > SESSION_IDLE_MS) this.sessions.delete(key)
  }
}
