// One throwaway PostgreSQL server for every suite of a test file: started by the first suite
// that needs it, destroyed by the file's outermost `after` (destroySharedPostgres). Starting
// a server costs seconds (initdb); each suite takes databases of its own on it.
import { requirePostgres, startPostgres } from '../../helpers/postgres.ts'
import type { PgServer } from '../../helpers/postgres.ts'

let shared: Promise<PgServer> | undefined

/**
 * For a `before` hook: the file's server, started on first need. Without the binaries the
 * suite is skipped with one line, or fails under CI (requirePostgres).
 */
export async function sharedPostgres (context: Mocha.Context): Promise<PgServer> {
  const binaries = requirePostgres(context)
  shared ??= startPostgres(binaries)
  return shared
}

/** Stops the server (if one was started) and removes its directory */
export async function destroySharedPostgres (): Promise<void> {
  const starting = shared
  shared = undefined
  const server = await starting?.catch(() => undefined)
  await server?.destroy()
}
