// `keyfair escrow …` and `keyfair balance`: the escrow operator's commands (`init` and
// `migrate` work on the repo offline; the rest ask the node running `--role escrow`), and a
// node's own account at an escrow.
import { resolve as resolvePath } from 'node:path'
import { Command, Option } from 'commander'
import { logger } from '@libp2p/logger'
import { BadRequestError } from './errors.ts'
import { formatMoney } from './format.ts'
import { EscrowFiles, DEFAULT_ESCROW_SETTINGS, validateLedgerUrl } from './escrow/state.ts'
import { openLedger } from './escrow/open-ledger.ts'
import { moveLedgerToPostgres } from './escrow/move-ledger.ts'
import { print, repoOf } from './cli-output.ts'
import { call, integerFlag, parseDuration, passphraseFileOption, unlockOrCreateKeys } from './cli-call.ts'
import type { EscrowSettings } from './escrow/state.ts'
import type { GlobalOptions } from './cli-output.ts'

export function addBalanceCommand (program: Command): void {
  program.command('balance')
    .description("this node's account at an escrow: balance, holds, sales, recent postings")
    .requiredOption('--escrow <address>', "the escrow's peer id, or its multiaddr ending in /p2p/<peer id>")
    .action(async (opts, command: Command) => {
      const a = await call(command, 'balance', { escrow: opts.escrow }, 30_000)
      print(command.optsWithGlobals(), a, () => [
        `${formatMoney(a.balance, a.currency)} for ${a.account}`,
        ...a.holds.filter(h => h.state === 'open').map(h => `  hold ${h.hold}: ${formatMoney(h.amount, a.currency)} for purchase ${h.purchase}, until ${new Date(h.expiresAt).toISOString()}`),
        ...(a.sales ?? []).map(h => `  sale ${h.hold}: ${formatMoney(h.amount, a.currency)} for purchase ${h.purchase}, ${h.state}${h.state === 'open' ? ` until ${new Date(h.expiresAt).toISOString()}` : ''}`)
      ].join('\n'))
    })
}

/** Opens the PostgreSQL ledger the settings name (migrating its schema) and closes it again */
async function checkLedger (files: EscrowFiles, settings: Partial<EscrowSettings>): Promise<void> {
  const ledger = await openLedger(files, { ...DEFAULT_ESCROW_SETTINGS, ...settings, ledger: validateLedgerUrl(settings.ledger) }, logger('keyfair:escrow:ledger'))
  await ledger.close()
}

/** `keyfair escrow …`: the operator's commands; `init` is offline, the rest ask the node running `--role escrow` */
export function addEscrowCommands (program: Command): void {
  const escrow = program.command('escrow')
    .description('the escrow operator: key, enrollment, deposits and withdrawals, ledger, audit')

  escrow.command('init')
    .description('create the escrow key (sealed in <repo>/keys) and settings in <repo>/escrow (offline; otherwise made at first start)')
    .option('--bits <n>', 'RSA key size (2048 for tests only)', '3072')
    .option('--currency <code>', 'the currency this escrow settles', 'EUR')
    .option('--hold-ttl <duration>', 'how long a hold waits for a receipt before it goes to the seller', '7d')
    .option('--reservation-ttl <duration>', 'how long a reservation waits for the device\'s request before it goes back to the buyer', '2m')
    .option('--clock-window <duration>', 'how far a request\'s timestamp may be from this clock', '5m')
    .option('--unblind-workers <n>', "threads for the private-key operations: 'auto' (one per core) or 0..64 (0: on the main thread)", 'auto')
    .option('--ledger <url>', 'keep the ledger in PostgreSQL: postgres://user@host:port/database (default: SQLite in the repo)')
    .option('--ledger-password-file <file>', 'the PostgreSQL password, from a file of mode 0600 (else $PGPASSWORD)')
    .addOption(new Option('--faulty-answers', 'answer wrongly on purpose (adversarial testing of buyers\' fraud proofs only)').hideHelp())
    .addOption(passphraseFileOption('the escrow key is sealed in the key store under it'))
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      await repo.assertInitialised()
      const files = new EscrowFiles(repo.path)
      const bits = integerFlag(opts.bits, '--bits')
      const settings: Partial<EscrowSettings> = { currency: opts.currency, holdTtlMs: parseDuration(opts.holdTtl), reservationTtlMs: parseDuration(opts.reservationTtl), clockWindowMs: parseDuration(opts.clockWindow), faultyAnswers: opts.faultyAnswers === true, unblindWorkers: opts.unblindWorkers === 'auto' ? 'auto' as const : integerFlag(opts.unblindWorkers, '--unblind-workers') }
      if (opts.ledger != null) settings.ledger = opts.ledger
      if (opts.ledgerPasswordFile != null) settings.ledgerPasswordFile = resolvePath(opts.ledgerPasswordFile)
      // the database is reached (and its schema made) before any key is: a wrong URL or password fails here
      if (settings.ledger != null) await checkLedger(files, settings)
      const keys = await unlockOrCreateKeys(repo, opts.passphraseFile)
      try {
        await files.init({ keys, bits, settings })
      } finally {
        keys.lock()
      }
      const result = { dir: files.dir, ...(await files.settings()) }
      print(options, result, () => `escrow key created in ${files.dir}\nstart it with: keyfair --repo ${repo.path} start --role escrow`)
    })

  escrow.command('migrate')
    .description('move the SQLite ledger (open and ended holds, every entry) into an empty PostgreSQL database, with the node stopped; the escrow then uses it')
    .requiredOption('--to <url>', 'postgres://user@host:port/database, empty')
    .option('--ledger-password-file <file>', 'the PostgreSQL password, from a file of mode 0600 (else $PGPASSWORD)')
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      await repo.assertInitialised()
      // the node must not write to the SQLite ledger while it moves
      const unlock = await repo.lock()
      try {
        const passwordFile = opts.ledgerPasswordFile != null ? resolvePath(opts.ledgerPasswordFile) : undefined
        const r = await moveLedgerToPostgres(new EscrowFiles(repo.path), opts.to, passwordFile, logger('keyfair:escrow:migrate'))
        print(options, r, () => [
          `ledger moved to ${r.to}: ${r.rows.accounts} accounts, ${r.rows.entries} entries, ${r.rows.postings} postings, ${r.rows.holds} holds`,
          `audit before and after: passed, deposits ${r.after.deposits} − withdrawals ${r.after.withdrawals}; balances + open holds + reservations = ${r.after.held}`,
          `${r.from} is left as it was; the escrow now uses PostgreSQL`
        ].join('\n'))
      } finally {
        await unlock()
      }
    })

  escrow.command('enroll')
    .description('get the escrow key certified by an agency with a one-time code')
    .requiredOption('--agency <multiaddr>', "the agency's multiaddr ending in /p2p/<peer id>")
    .requiredOption('--code <code>', 'the one-time code the agency operator gave you')
    .action(async (opts, command: Command) => {
      const r = await call(command, 'escrow.enroll', { agency: opts.agency, code: opts.code }, 60_000)
      print(command.optsWithGlobals(), r, () => `escrow ${r.peerId} enrolled: certificate ${r.serial} until ${r.notAfter}`)
    })

  escrow.command('info')
    .description('key size, currency, hold lifetime, unblind worker threads and CRL of the running escrow')
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'escrow.info')
      print(command.optsWithGlobals(), r, () => Object.entries(r).map(([k, v]) => `${k}: ${String(v)}`).join('\n'))
    })

  escrow.command('crl')
    .description("the agency's revocation list (pushed by the agency; fetched when none came for 2 minutes)")
    .command('refresh')
    .description("fetch the agency's current revocation list now")
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'escrow.crlRefresh', {}, 30_000)
      print(command.optsWithGlobals(), r, () => `CRL number ${r.number}, ${r.revoked} revoked, next update ${r.nextUpdate}`)
    })

  for (const [name, description] of [['deposit', 'credit an account (a bank transfer in)'], ['withdraw', 'debit an account (a bank transfer out); refused beyond its balance']] as const) {
    escrow.command(`${name} <peer> <amount>`)
      .description(`${description}; amount in minor units (1250), or major units of the escrow's currency (12.50, 12.50 EUR)`)
      .option('--memo <text>', 'a note kept with the entry')
      .action(async (account: string, amount: string, opts, command: Command) => {
        // a decimal goes as it was typed: the escrow knows its currency's minor unit
        const value = /^\d+$/.test(amount) ? integerFlag(amount, 'amount') : amount
        const r = await call(command, `escrow.${name}`, { account, amount: value, memo: opts.memo })
        print(command.optsWithGlobals(), r, () => `${r.account}: balance ${formatMoney(r.balance, r.currency)}`)
      })
  }

  escrow.command('ledger')
    .description('postings, newest first')
    .option('--account <peer>', 'only this account (or hold:<id>, @world)')
    .option('--kind <kind>', 'deposit, withdraw, hold, release, refund or expire')
    .option('--since <iso-time>', 'only entries at or after this time')
    .option('--limit <n>', 'at most this many postings', '100')
    .action(async (opts, command: Command) => {
      const since = opts.since != null ? Date.parse(opts.since) : undefined
      if (since != null && Number.isNaN(since)) throw new BadRequestError(`--since '${opts.since}' is not a time`)
      const r = await call(command, 'escrow.ledger', { account: opts.account, kind: opts.kind, since, limit: integerFlag(opts.limit, '--limit') })
      print(command.optsWithGlobals(), r, () => r.postings.length === 0
        ? 'no postings'
        : r.postings.map(p => `${new Date(p.at).toISOString()}  #${p.entry}  ${p.kind.padEnd(8)} ${formatMoney(p.amount, r.currency).padStart(14)}  ${p.account}${p.memo != null ? '  ' + p.memo : ''}`).join('\n'))
    })

  escrow.command('holds')
    .description('holds, newest first')
    .option('--state <state>', 'open, released or refunded')
    .option('--buyer <peer>', 'only this buyer')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (opts, command: Command) => {
      const r = await call(command, 'escrow.holds', { state: opts.state, buyer: opts.buyer, limit: integerFlag(opts.limit, '--limit') })
      print(command.optsWithGlobals(), r, () => r.holds.length === 0
        ? 'no holds'
        : r.holds.map(h => `${String(h.id)}  ${String(h.state).padEnd(8)} ${formatMoney(Number(h.amount), r.currency).padStart(12)}  buyer ${String(h.buyer)}  seller ${String(h.seller)}${h.endReason != null ? '  (' + String(h.endReason) + ')' : ''}`).join('\n'))
    })

  escrow.command('accounts')
    .description('every account and its balance, and the number of open holds')
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'escrow.accounts')
      print(command.optsWithGlobals(), r, () => [...r.accounts.map(a => `${a.account}  ${formatMoney(a.balance, r.currency)}`), `${r.openHolds} open hold(s)`].join('\n'))
    })

  escrow.command('audit')
    .description('check the ledger: entries balance, balances match postings, none negative, each hold open or ended once, money conserved; exit 1 on any violation')
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'escrow.audit', {}, 120_000)
      const money = (minor: number): string => formatMoney(minor, r.currency)
      print(command.optsWithGlobals(), r, () => [
        r.ok ? 'audit passed' : `AUDIT FAILED: ${r.violations.length} violation(s)`,
        ...r.violations.map(v => `  ${v}`),
        `accounts ${r.accounts}; holds open ${r.holds.open}, released ${r.holds.released}, refunded ${r.holds.refunded}; reservations open ${r.reserved.open} (${money(r.reserved.amount)})`,
        `deposits ${money(r.deposits)} − withdrawals ${money(r.withdrawals)} = ${money(r.deposits - r.withdrawals)}; balances + open holds + reservations = ${money(r.held)}`
      ].join('\n'))
      if (!r.ok) process.exitCode = 1
    })
}
