// A throwaway PostgreSQL server for the ledger tests: initdb in a temporary directory,
// listening on a free loopback port (and a socket in that directory), a password for the
// ledger's user over TCP, stopped (`pg_ctl stop`) and removed at the end. It can be
// stopped hard and started again on the same data, for outage tests.
//
// The binaries are looked up on PATH, then in /usr/local/bin and /usr/lib/postgresql/*/bin.
// When they are missing the tests are skipped with one line, except under CI (env CI set),
// where they fail. initdb refuses to run as root: then every server command runs as the
// unprivileged user `nobody`, owning the directory.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from './nodes.ts'

const run = promisify(execFile)

export const SKIP_LINE = 'PostgreSQL tests skipped: no initdb/pg_ctl on PATH (CI installs postgresql)'

export interface PgBinaries {
  initdb: string
  pgCtl: string
  postgres: string
}

/** initdb, pg_ctl and postgres from one directory, or undefined */
export function findPgBinaries (): PgBinaries | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(d => d !== '')
  dirs.push('/usr/local/bin')
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))
    dirs.push(...versions.map(v => join('/usr/lib/postgresql', v, 'bin')))
  } catch {}
  for (const dir of dirs) {
    const found = { initdb: join(dir, 'initdb'), pgCtl: join(dir, 'pg_ctl'), postgres: join(dir, 'postgres') }
    if (existsSync(found.initdb) && existsSync(found.pgCtl) && existsSync(found.postgres)) return found
  }
  return undefined
}

let skipPrinted = false

/**
 * For a `before` hook: the binaries, or the suite skipped (one line printed per run);
 * under CI, missing binaries fail instead.
 */
export function requirePostgres (context: Mocha.Context): PgBinaries {
  const found = findPgBinaries()
  if (found != null) return found
  if (process.env.CI != null && process.env.CI !== '') throw new Error('PostgreSQL binaries (initdb, pg_ctl, postgres) not found: CI must install postgresql')
  if (!skipPrinted) console.log(SKIP_LINE)
  skipPrinted = true
  context.skip()
}

export interface PgServer {
  port: number
  dir: string
  user: string
  password: string
  /** a file holding the password (mode 0600), as an operator would keep it */
  passwordFile: string
  /** a new empty database; its URL, without the password */
  createDatabase: (name: string) => Promise<string>
  /** CHECKPOINT: a crash after it replays only the WAL written since */
  checkpoint: () => Promise<void>
  /** `pg_ctl stop -m <mode>`; immediate is a crash: recovery replays the WAL at the next start */
  stop: (mode?: 'fast' | 'immediate') => Promise<void>
  start: () => Promise<void>
  running: () => boolean
  /** stops it (if running) and removes its directory */
  destroy: () => Promise<void>
}

const USER = 'keyfair'

export async function startPostgres (binaries: PgBinaries): Promise<PgServer> {
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-pg-'))
  const data = join(dir, 'data')
  const password = randomBytes(18).toString('base64url')
  const passwordFile = join(dir, 'password')
  await writeFile(passwordFile, password + '\n', { mode: 0o600 })
  const asRoot = process.getuid?.() === 0
  let uid = 0
  if (asRoot) {
    uid = Number((await run('id', ['-u', 'nobody'])).stdout.trim())
    await chown(dir, uid, Number((await run('id', ['-g', 'nobody'])).stdout.trim()))
    await chmod(dir, 0o700)
    await chown(passwordFile, uid, 0)
  }
  /** a server command, as `nobody` when this process is root */
  const pgRun = async (file: string, args: string[], timeoutMs = 90_000): Promise<void> => {
    const [cmd, argv] = asRoot ? ['setpriv', ['--reuid', String(uid), '--regid', String((await run('id', ['-g', 'nobody'])).stdout.trim()), '--clear-groups', '--', file, ...args]] : [file, args]
    await run(cmd as string, argv as string[], { timeout: timeoutMs, cwd: dir, env: { ...process.env, LC_ALL: 'C' } })
  }
  // TCP needs the password (scram); the socket in `dir`, reachable only by its owner, is trusted
  await pgRun(binaries.initdb, ['-D', data, '-U', USER, `--pwfile=${passwordFile}`, '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'])
  const port = await freePort()
  let up = false
  /** one statement on the `postgres` database, over its own connection */
  const admin = async (statement: string): Promise<void> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: USER, password, database: 'postgres', connectionTimeoutMillis: 10_000, query_timeout: 60_000 })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  const server: PgServer = {
    port,
    dir,
    user: USER,
    password,
    passwordFile,
    async createDatabase (name) {
      await admin(`CREATE DATABASE ${pg.escapeIdentifier(name)}`)
      return `postgres://${USER}@127.0.0.1:${port}/${name}`
    },
    async checkpoint () {
      await admin('CHECKPOINT')
    },
    async start () {
      await pgRun(binaries.pgCtl, ['start', '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o',
        `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=50 -c shared_buffers=32MB`])
      up = true
    },
    async stop (mode = 'fast') {
      await pgRun(binaries.pgCtl, ['stop', '-D', data, '-m', mode, '-w', '-t', '60'])
      up = false
    },
    running: () => up,
    async destroy () {
      if (up) await server.stop('fast').catch(async () => server.stop('immediate'))
      await rm(dir, { recursive: true, force: true })
    }
  }
  try {
    await server.start()
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return server
}
