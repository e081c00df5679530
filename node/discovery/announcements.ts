import { transaction } from '../store/database.ts'
import type { Migration } from '../store/database.ts'
import type { DatabaseSync } from 'node:sqlite'

export const announcementMigrations: Migration[] = [{
  version: 1,
  up: `CREATE TABLE announcements (
    content_id TEXT PRIMARY KEY,
    keywords TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    provided_at INTEGER
  )`
}]

export interface Announcement {
  contentId: string
  keywords: string[]
  createdAt: number
  providedAt: number | undefined
}

/** What this node has announced, so a restart re-provides it. */
export class AnnouncementStore {
  private readonly db: DatabaseSync

  constructor (db: DatabaseSync) {
    this.db = db
  }

  /** Records an announcement; keywords merge with those already recorded for the content. */
  save (contentId: string, keywords: string[], now = Date.now()): Announcement {
    return transaction(this.db, () => {
      const existing = this.get(contentId)
      const merged = [...new Set([...(existing?.keywords ?? []), ...keywords])]
      this.db.prepare(`INSERT INTO announcements (content_id, keywords, created_at) VALUES (?, ?, ?)
        ON CONFLICT (content_id) DO UPDATE SET keywords = excluded.keywords`)
        .run(contentId, JSON.stringify(merged), now)
      return { contentId, keywords: merged, createdAt: existing?.createdAt ?? now, providedAt: existing?.providedAt }
    })
  }

  /** Drops an announcement: a restart no longer provides it */
  forget (contentId: string): void {
    this.db.prepare('DELETE FROM announcements WHERE content_id = ?').run(contentId)
  }

  markProvided (contentId: string, now = Date.now()): void {
    this.db.prepare('UPDATE announcements SET provided_at = ? WHERE content_id = ?').run(now, contentId)
  }

  get (contentId: string): Announcement | undefined {
    const row = this.db.prepare('SELECT * FROM announcements WHERE content_id = ?').get(contentId)
    return row == null ? undefined : toAnnouncement(row)
  }

  count (): number {
    const row = this.db.prepare('SELECT count(*) AS n FROM announcements').get() as { n: number }
    return row.n
  }

  list (): Announcement[] {
    return this.db.prepare('SELECT * FROM announcements ORDER BY created_at, content_id').all().map(toAnnouncement)
  }
}

function toAnnouncement (row: Record<string, unknown>): Announcement {
  return {
    contentId: String(row.content_id),
    keywords: JSON.parse(String(row.keywords)),
    createdAt: Number(row.created_at),
    providedAt: row.provided_at == null ? undefined : Number(row.provided_at)
  }
}
