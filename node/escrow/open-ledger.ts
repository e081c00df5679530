// Which engine keeps an escrow's ledger: SQLite in `<repo>/escrow/ledger.db` (the default),
// or the PostgreSQL database its settings name.
import { SqliteLedger } from './sqlite-ledger.ts'
import type { LedgerStore } from './ledger-store.ts'
import type { EscrowFiles, EscrowSettings } from './state.ts'
import type { Logger } from '@libp2p/interface'

export async function openLedger (files: EscrowFiles, settings: EscrowSettings, log: Logger): Promise<LedgerStore> {
  log('ledger on SQLite in %s', files.ledgerFile)
  return SqliteLedger.open(files.ledgerFile)
}
