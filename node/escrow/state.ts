// An escrow's files in `<repo>/escrow/`: the certificate and agency root from enrollment,
// the agency's address (for CRL refreshes), its settings, and `ledger.db`. Its RSA key is
// sealed in the repo's key store (record `escrow-rsa`).
import { generateKeyPair } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { promisify } from 'node:util'
import { fileExists, writeFileAtomic } from '../../device/store/files.ts'
import { MAX_RSA_BITS, MIN_RSA_BITS } from '../../device/pki/index.ts'
import { BadConfigError } from '../errors.ts'
import { ESCROW_KEY } from '../keys/keystore.ts'
import { DEFAULT_CLOCK_WINDOW_MS, DEFAULT_HOLD_TTL_MS, DEFAULT_RESERVATION_TTL_MS } from './escrow.ts'
import { MAX_UNBLIND_WORKERS } from './pool.ts'
import type { UnlockedKeys } from '../keys/keystore.ts'
import type { KeyObject } from 'node:crypto'

export const DEFAULT_ESCROW_BITS = 3072

export interface EscrowSettings {
  currency: string
  holdTtlMs: number
  /** how long a reservation waits for the device's request before it goes back to the buyer */
  reservationTtlMs: number
  clockWindowMs: number
  /** adversarial testing only: wrong answers (see Escrow) */
  faultyAnswers: boolean
  /**
   * Worker threads doing the RSA private operations: 'auto' (one per core this
   * process may use), a number 1..64, or 0 to do them on the main thread.
   */
  unblindWorkers: 'auto' | number
  /**
   * Where the ledger lives: absent for SQLite in `<repo>/escrow/ledger.db`, or a
   * `postgres://user@host:port/database` URL (never with a password in it)
   */
  ledger?: string
  /** a file (mode 0600) holding the PostgreSQL password; else $PGPASSWORD */
  ledgerPasswordFile?: string
}

export const DEFAULT_ESCROW_SETTINGS: EscrowSettings = { currency: 'EUR', holdTtlMs: DEFAULT_HOLD_TTL_MS, reservationTtlMs: DEFAULT_RESERVATION_TTL_MS, clockWindowMs: DEFAULT_CLOCK_WINDOW_MS, faultyAnswers: false, unblindWorkers: 'auto' }

export interface EscrowCredentialFiles {
  certificate: string
  root: string
  /** the agency's multiaddr, for CRL refreshes */
  agency: string
}

export class EscrowFiles {
  readonly dir: string

  constructor (repoPath: string) {
    this.dir = join(repoPath, 'escrow')
  }

  /** where earlier versions kept the key in plaintext (sealed into the key store at start) */
  get keyFile (): string { return join(this.dir, 'escrow.key') }
  get ledgerFile (): string { return join(this.dir, 'ledger.db') }
  private get settingsFile (): string { return join(this.dir, 'settings.json') }
  private get credentialsFile (): string { return join(this.dir, 'credentials.json') }

  async hasKey (keys: UnlockedKeys): Promise<boolean> {
    return await keys.has(ESCROW_KEY) || await fileExists(this.keyFile)
  }

  /** Creates the escrow's key (sealed in `keys`) and settings (`keyfair escrow init`); refuses if a key exists */
  async init (options: { keys: UnlockedKeys, bits?: number, settings?: Partial<EscrowSettings> }): Promise<KeyObject> {
    if (await this.hasKey(options.keys)) throw new BadConfigError(`an escrow key already exists in ${this.dir}`)
    const settings = validateSettings({ ...DEFAULT_ESCROW_SETTINGS, ...options.settings })
    const bits = options.bits ?? DEFAULT_ESCROW_BITS
    if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw new BadConfigError(`escrow key bits must be ${MIN_RSA_BITS}..${MAX_RSA_BITS}`)
    const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: bits })
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    await writeFileAtomic(this.settingsFile, JSON.stringify(settings, null, 2) + '\n', 0o644)
    await options.keys.putPrivateKey(ESCROW_KEY, privateKey)
    return privateKey
  }

  /** The key, unsealed from `keys`; created with default settings on first start */
  async loadOrCreateKey (keys: UnlockedKeys): Promise<KeyObject> {
    const key = await keys.getPrivateKey(ESCROW_KEY)
    if (key != null) return key
    if (await fileExists(this.keyFile)) throw new BadConfigError(`${this.keyFile} is still in plaintext: start the node with the repo's passphrase to seal it`)
    return this.init({ keys })
  }

  async settings (): Promise<EscrowSettings> {
    try {
      return validateSettings({ ...DEFAULT_ESCROW_SETTINGS, ...JSON.parse(await readFile(this.settingsFile, 'utf8')) })
    } catch (err: any) {
      if (err.code === 'ENOENT') return DEFAULT_ESCROW_SETTINGS
      if (err instanceof SyntaxError) throw new BadConfigError(`${this.settingsFile} is not valid JSON`)
      throw err
    }
  }

  /** Changes some settings (checked as a whole); undefined removes one */
  async updateSettings (change: Partial<EscrowSettings>): Promise<EscrowSettings> {
    const merged: Record<string, unknown> = { ...(await this.settings()), ...change }
    for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key]
    const settings = validateSettings({ ...DEFAULT_ESCROW_SETTINGS, ...merged })
    await writeFileAtomic(this.settingsFile, JSON.stringify(settings, null, 2) + '\n', 0o644)
    return settings
  }

  async credentials (): Promise<EscrowCredentialFiles | undefined> {
    try {
      return JSON.parse(await readFile(this.credentialsFile, 'utf8'))
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
  }

  /** The last CRL accepted, so a restarted escrow checks devices before it reaches the agency */
  async crl (): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(join(this.dir, 'crl.der')))
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
  }

  async saveCrl (der: Uint8Array): Promise<void> {
    await writeFileAtomic(join(this.dir, 'crl.der'), der, 0o644)
  }

  async saveCredentials (credentials: EscrowCredentialFiles): Promise<void> {
    await writeFileAtomic(this.credentialsFile, JSON.stringify(credentials, null, 2) + '\n', 0o644)
  }
}

function validateSettings (s: EscrowSettings): EscrowSettings {
  if (typeof s.currency !== 'string' || !/^[A-Z0-9]{1,12}$/.test(s.currency)) throw new BadConfigError('escrow currency must be 1..12 of A-Z, 0-9 (e.g. EUR)')
  if (!Number.isSafeInteger(s.holdTtlMs) || s.holdTtlMs < 1000) throw new BadConfigError('hold lifetime must be at least 1 s')
  if (!Number.isSafeInteger(s.reservationTtlMs) || s.reservationTtlMs < 1000) throw new BadConfigError('reservation lifetime must be at least 1 s')
  if (!Number.isSafeInteger(s.clockWindowMs) || s.clockWindowMs < 1000) throw new BadConfigError('clock window must be at least 1 s')
  if (typeof s.faultyAnswers !== 'boolean') throw new BadConfigError('faultyAnswers must be true or false')
  if (s.unblindWorkers !== 'auto' && (!Number.isInteger(s.unblindWorkers) || s.unblindWorkers < 0 || s.unblindWorkers > MAX_UNBLIND_WORKERS)) {
    throw new BadConfigError(`unblindWorkers must be 'auto' or 0..${MAX_UNBLIND_WORKERS} (0: on the main thread)`)
  }
  const valid: EscrowSettings = { currency: s.currency, holdTtlMs: s.holdTtlMs, reservationTtlMs: s.reservationTtlMs, clockWindowMs: s.clockWindowMs, faultyAnswers: s.faultyAnswers, unblindWorkers: s.unblindWorkers }
  if (s.ledger != null) valid.ledger = validateLedgerUrl(s.ledger)
  if (s.ledgerPasswordFile != null) {
    if (typeof s.ledgerPasswordFile !== 'string' || !isAbsolute(s.ledgerPasswordFile)) throw new BadConfigError('ledgerPasswordFile must be an absolute path')
    if (valid.ledger == null) throw new BadConfigError('ledgerPasswordFile goes with a PostgreSQL ledger')
    valid.ledgerPasswordFile = s.ledgerPasswordFile
  }
  return valid
}

/** A postgres:// URL naming host, port, user and database; a password in it is refused (it would sit in files and process lists) */
export function validateLedgerUrl (ledger: unknown): string {
  let url: URL
  try {
    url = new URL(String(ledger))
  } catch {
    throw new BadConfigError('the ledger must be a URL like postgres://user@127.0.0.1:5432/keyfair')
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new BadConfigError('the ledger must be a postgres:// URL (SQLite in the repo is the default)')
  if (url.password !== '') throw new BadConfigError('the ledger URL must not carry a password: use --ledger-password-file or $PGPASSWORD')
  if (url.username === '' || url.hostname === '' || url.pathname.length <= 1) throw new BadConfigError('the ledger URL names a user, a host and a database: postgres://user@host:port/database')
  if (url.search !== '' || url.hash !== '') throw new BadConfigError('the ledger URL takes no parameters')
  return url.toString()
}

