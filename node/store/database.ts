import { DatabaseSync } from 'node:sqlite'

/** One schema step; applied in order, each in its own transaction, tracked by `user_version`. */
export interface Migration {
  version: number
  up: string
}

/**
 * Opens a SQLite file for durable writes: WAL with synchronous=FULL, so a
 * committed transaction survives a crash or power loss; foreign keys on.
 */
export function openDatabase (file: string, migrations: Migration[]): DatabaseSync {
  const db = new DatabaseSync(file)
  try {
    db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = FULL')
    db.exec('PRAGMA foreign_keys = ON')
    db.exec('PRAGMA busy_timeout = 5000')
    migrate(db, migrations)
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

function migrate (db: DatabaseSync, migrations: Migration[]): void {
  const row = db.prepare('PRAGMA user_version').get() as { user_version: number } | undefined
  let current = row?.user_version ?? 0
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue
    transaction(db, () => {
      db.exec(migration.up)
      db.exec(`PRAGMA user_version = ${Math.trunc(migration.version)}`)
    })
    current = migration.version
  }
}

/** Runs `fn` in one IMMEDIATE transaction: all of it commits or none of it does. */
export function transaction<T> (db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE')
  try {
    const result = fn()
    db.exec('COMMIT')
    return result
  } catch (err) {
    db.exec('ROLLBACK')
    throw err
  }
}
