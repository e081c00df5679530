// Moves an escrow's SQLite ledger into an empty PostgreSQL database (`keyfair escrow migrate
// --to postgres://…`), with the node stopped: every account, entry, posting and hold (open
// and ended) keeps its id; the move commits only if the audit there equals the audit here.
// The escrow's settings then name the database; the SQLite file is left as it was.
import { existsSync } from 'node:fs'
import { BadConfigError } from '../errors.ts'
import { AuditFailedError } from './errors.ts'
import { Ledger } from './ledger.ts'
import { ledgerPassword } from './open-ledger.ts'
import { PgLedger } from './pg-ledger.ts'
import { validateLedgerUrl } from './state.ts'
import type { AuditReport } from './ledger-store.ts'
import type { EscrowFiles } from './state.ts'
import type { Logger } from '@libp2p/interface'

export interface MoveResult {
  from: string
  to: string
  before: AuditReport
  after: AuditReport
  rows: { accounts: number, entries: number, postings: number, holds: number }
}

export async function moveLedgerToPostgres (files: EscrowFiles, to: string, passwordFile: string | undefined, log: Logger): Promise<MoveResult> {
  const url = validateLedgerUrl(to)
  const settings = await files.settings()
  if (settings.ledger != null) throw new BadConfigError(`this escrow's ledger is already in PostgreSQL (${settings.ledger})`)
  if (!existsSync(files.ledgerFile)) throw new BadConfigError(`no ledger at ${files.ledgerFile} to move`)
  const source = Ledger.open(files.ledgerFile)
  let rows: ReturnType<Ledger['dump']>
  let before: AuditReport
  try {
    before = source.audit()
    if (!before.ok) throw new AuditFailedError(before.violations)
    rows = source.dump()
  } finally {
    source.close()
  }
  const target = await PgLedger.open({ url, password: await ledgerPassword(passwordFile) }, log)
  let after: AuditReport
  try {
    after = await target.load(rows, before)
  } finally {
    await target.close()
  }
  await files.updateSettings({ ledger: url, ledgerPasswordFile: passwordFile })
  log('ledger moved from %s to %s', files.ledgerFile, url)
  return {
    from: files.ledgerFile,
    to: url,
    before,
    after,
    rows: { accounts: rows.accounts.length, entries: rows.entries.length, postings: rows.postings.length, holds: rows.holds.length }
  }
}
