// Which engine keeps an escrow's ledger: SQLite in `<repo>/escrow/ledger.db` (the default),
// or the PostgreSQL database its settings name. The database password comes from a file
// of mode 0600 or from $PGPASSWORD, never from the URL or the command line.
import { readFile, stat } from 'node:fs/promises'
import { BadConfigError, InsecureFileError } from '../errors.ts'
import { PgLedger } from './pg-ledger.ts'
import { SqliteLedger } from './sqlite-ledger.ts'
import type { LedgerStore } from './ledger-store.ts'
import type { EscrowFiles, EscrowSettings } from './state.ts'
import type { Logger } from '@libp2p/interface'

export async function openLedger (files: EscrowFiles, settings: EscrowSettings, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<LedgerStore> {
  if (settings.ledger == null) {
    log('ledger on SQLite in %s', files.ledgerFile)
    return SqliteLedger.open(files.ledgerFile)
  }
  const connection = await ledgerConnection(settings, env)
  const url = new URL(connection.url)
  log('ledger on PostgreSQL at %s:%s, database %s', url.hostname, url.port || '5432', url.pathname.slice(1))
  return PgLedger.open(connection, log)
}

/** The PostgreSQL URL and password of a ledger on PostgreSQL; undefined for SQLite */
export async function ledgerConnection (settings: EscrowSettings, env: NodeJS.ProcessEnv = process.env): Promise<{ url: string, password: string | undefined }> {
  if (settings.ledger == null) throw new BadConfigError('this escrow keeps its ledger on SQLite')
  return { url: settings.ledger, password: await ledgerPassword(settings.ledgerPasswordFile, env) }
}

/** The password from its file (one line, mode 0600), else $PGPASSWORD, else none (trust or peer auth) */
export async function ledgerPassword (file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (file != null) {
    const info = await stat(file)
    if ((info.mode & 0o077) !== 0) throw new InsecureFileError(file, info.mode)
    return (await readFile(file, 'utf8')).replace(/\r?\n$/, '')
  }
  const fromEnv = env.PGPASSWORD
  return fromEnv != null && fromEnv !== '' ? fromEnv : undefined
}
