// Which engine keeps an escrow's ledger: SQLite in `<repo>/escrow/ledger.db` (the default),
// or the PostgreSQL database its settings name. The database password comes from a file
// of mode 0600 or from $PGPASSWORD, never from the URL or the command line.
import { readFile, stat } from 'node:fs/promises'
import { InsecureFileError } from '../errors.ts'
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
  const password = await ledgerPassword(settings.ledgerPasswordFile, env)
  const url = new URL(settings.ledger)
  log('ledger on PostgreSQL at %s:%s, database %s', url.hostname, url.port || '5432', url.pathname.slice(1))
  return PgLedger.open({ url: settings.ledger, password }, log)
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
