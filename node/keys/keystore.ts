// The node's long-term secrets at rest (`<repo>/keys/`): one file sealed under the repo's
// passphrase holding a random 32-byte store key, and one sealed record per secret (the
// agency's CA key, the escrow's RSA key, each published work's content key) under a key
// derived from the store key and the record's name. So a start costs one scrypt however
// many secrets there are, and a record renamed or moved to another store does not open.
import { createPrivateKey, randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { ownBytes } from '../../device/crypto/aead.ts'
import { toHex, utf8 } from '../../device/crypto/bytes.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { createShapeChecks } from '../../device/objects/validate.ts'
import { fileExists, writeFileAtomic } from '../../device/store/files.ts'
import {
  DEFAULT_KDF, KDF_SALT_LENGTH, MAX_KDF_N, MIN_KDF_N, MIN_PASSPHRASE_LENGTH, SEAL_KEY_LENGTH, checkKdf, generateStoreKey, openRecord, openWithPassphrase,
  sealRecord, sealWithPassphrase
} from '../../device/store/seal.ts'
import { BadConfigError, InsecureFileError } from '../errors.ts'
import {
  KeyStoreCorruptError, KeyStoreExistsError, KeyStoreLockedError, KeyStoreNotInitialisedError, WeakPassphraseError, fromSealError
} from './errors.ts'
import type { KdfParams } from '../../device/store/seal.ts'
import type { KeyObject } from 'node:crypto'

export type { KdfParams }

const FILE_MODE = 0o600
const DIR_MODE = 0o700
const STORE_FILE = 'keystore.cbor'
const RECORD_SUFFIX = '.sealed'
/** record names: role secrets and `content-<cid>`; a name is also its file's name */
const RECORD_NAME = /^[a-z][a-z0-9-]{0,31}(-[A-Za-z0-9]{1,100})?$/
/** a sealed record is a key or a small CBOR map: anything far larger is not one */
const MAX_RECORD_BYTES = 64 * 1024
const MAX_STORE_FILE_BYTES = 4096
const check = createShapeChecks(message => new KeyStoreCorruptError(`the key store is damaged: ${message}`))

/** Record names of the role secrets */
export const AGENCY_CA_KEY = 'agency-ca'
export const ESCROW_KEY = 'escrow-rsa'
export function contentKeyName (cid: string): string {
  return checkName(`content-${cid}`)
}

/** A passphrase a key store may be created under (at least 8 bytes, as the device's) */
export function checkRepoPassphrase (passphrase: string): string {
  if (Buffer.byteLength(passphrase) < MIN_PASSPHRASE_LENGTH) throw new WeakPassphraseError()
  return passphrase
}

/** scrypt's N for key stores a process creates (tests and swarms; never below 2^14) */
export const KDF_ENV = 'KEYFAIR_KDF_N'

/** The KDF cost `$KEYFAIR_KDF_N` asks for; undefined (the default cost) when unset */
export function kdfFromEnv (env: NodeJS.ProcessEnv = process.env): KdfParams | undefined {
  const raw = env[KDF_ENV]
  if (raw == null || raw === '') return undefined
  const N = Number(raw)
  if (!Number.isInteger(N) || N < MIN_KDF_N || N > MAX_KDF_N || (N & (N - 1)) !== 0) {
    throw new BadConfigError(`$${KDF_ENV} must be a power of two from ${MIN_KDF_N} to ${MAX_KDF_N}`)
  }
  return { ...DEFAULT_KDF, N }
}

export interface CreateKeyStoreOptions {
  /** scrypt cost of the passphrase (default N=2^17, r=8, p=1; never below N=2^14) */
  kdf?: KdfParams
}

/**
 * `<repo>/keys/`: `keystore.cbor` (0600) and `<name>.sealed` records (0600), in a 0700
 * directory. Creating or unlocking it gives the store's `UnlockedKeys`.
 */
export class NodeKeyStore {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  get file (): string {
    return join(this.dir, STORE_FILE)
  }

  async exists (): Promise<boolean> {
    return fileExists(this.file)
  }

  /** A new store under `passphrase`; refuses to replace one */
  async create (passphrase: string, options: CreateKeyStoreOptions = {}): Promise<UnlockedKeys> {
    const kdf = options.kdf ?? DEFAULT_KDF
    if (await this.exists()) throw new KeyStoreExistsError(this.dir)
    const id = toHex(new Uint8Array(randomBytes(16)))
    const storeKey = generateStoreKey()
    let sealed
    try {
      sealed = await sealWithPassphrase(utf8(passphrase), storeKey, storeAad(id), kdf)
    } catch (err) {
      storeKey.fill(0)
      throw fromSealError(err)
    }
    await mkdir(this.dir, { recursive: true, mode: DIR_MODE })
    const file = { v: 1, id, kdf: { alg: 'scrypt', ...sealed.kdf, salt: sealed.salt }, nonce: sealed.nonce, box: sealed.box }
    await writeFileAtomic(this.file, encodeObject(file), FILE_MODE)
    return new UnlockedKeys(this.dir, id, storeKey)
  }

  /** Opens the store; a wrong passphrase fails here (ERR_WRONG_PASSPHRASE) and writes nothing */
  async unlock (passphrase: string): Promise<UnlockedKeys> {
    const file = await this.readStoreFile()
    let storeKey: Uint8Array
    try {
      storeKey = await openWithPassphrase(utf8(passphrase), file, storeAad(file.id))
    } catch (err) {
      throw fromSealError(err)
    }
    if (storeKey.length !== SEAL_KEY_LENGTH) {
      storeKey.fill(0)
      throw new KeyStoreCorruptError('the key store holds a store key of the wrong length')
    }
    return new UnlockedKeys(this.dir, file.id, storeKey)
  }

  private async readStoreFile (): Promise<{ id: string, kdf: KdfParams, salt: Uint8Array, nonce: Uint8Array, box: Uint8Array }> {
    let info
    try {
      info = await stat(this.file)
    } catch (err: any) {
      if (err.code === 'ENOENT') throw new KeyStoreNotInitialisedError(this.dir)
      throw err
    }
    if ((info.mode & 0o077) !== 0) throw new InsecureFileError(this.file, info.mode)
    if (info.size > MAX_STORE_FILE_BYTES) throw new KeyStoreCorruptError('the key store file is too large to be one')
    let decoded: unknown
    try {
      decoded = decodeObject(await readFile(this.file))
    } catch {
      throw new KeyStoreCorruptError('the key store file is not readable')
    }
    const o = check.expectRecord(decoded, 'key store')
    if (o.v !== 1) throw new KeyStoreCorruptError('the key store has an unsupported version')
    const kdf = check.expectRecord(o.kdf, 'kdf')
    if (kdf.alg !== 'scrypt') throw new KeyStoreCorruptError('the key store names an unknown KDF')
    const params = { N: check.expectUint(kdf.N, 'kdf.N'), r: check.expectUint(kdf.r, 'kdf.r', 64), p: check.expectUint(kdf.p, 'kdf.p', 16) }
    try {
      checkKdf(params)
    } catch (err) {
      throw fromSealError(err)
    }
    const id = check.expectString(o.id, 'id', 32)
    if (!/^[0-9a-f]{32}$/.test(id)) throw new KeyStoreCorruptError('the key store has a malformed id')
    return {
      id,
      kdf: params,
      salt: check.expectBytes(kdf.salt, 'kdf.salt', 64, KDF_SALT_LENGTH),
      nonce: check.expectBytes(o.nonce, 'nonce', 12, 12),
      box: check.expectBytes(o.box, 'box', SEAL_KEY_LENGTH + 16, SEAL_KEY_LENGTH + 16)
    }
  }
}

/**
 * The open store: seals and opens records while the node runs. `lock()` wipes the store
 * key. Never printed: inspecting or serialising it shows no key.
 */
export class UnlockedKeys {
  readonly dir: string
  readonly id: string
  private storeKey: Uint8Array | undefined

  constructor (dir: string, id: string, storeKey: Uint8Array) {
    this.dir = dir
    this.id = id
    this.storeKey = storeKey
  }

  get locked (): boolean {
    return this.storeKey == null
  }

  async has (name: string): Promise<boolean> {
    return fileExists(this.pathOf(name))
  }

  /** Seals `secret` as record `name` (replacing one of that name) */
  async put (name: string, secret: Uint8Array): Promise<void> {
    const sealed = sealRecord(this.key(), recordInfo(name), recordAad(this.id, name), secret)
    await mkdir(this.dir, { recursive: true, mode: DIR_MODE })
    await writeFileAtomic(this.pathOf(name), sealed, FILE_MODE)
  }

  /** The secret of record `name`, undefined when there is none; the caller wipes it after use */
  async get (name: string): Promise<Uint8Array | undefined> {
    const file = this.pathOf(name)
    let data: Uint8Array
    try {
      const info = await stat(file)
      if (info.size > MAX_RECORD_BYTES) throw new KeyStoreCorruptError(`sealed record ${name} is too large to be one`)
      data = await readFile(file)
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
    try {
      return openRecord(this.key(), recordInfo(name), recordAad(this.id, name), data, `sealed record ${name} does not open with this key store`)
    } catch (err) {
      throw fromSealError(err)
    }
  }

  async delete (name: string): Promise<void> {
    await rm(this.pathOf(name), { force: true })
  }

  /** Seals an RSA (or any) private key as PKCS#8 DER */
  async putPrivateKey (name: string, key: KeyObject): Promise<void> {
    const der = ownBytes(key.export({ type: 'pkcs8', format: 'der' }))
    try {
      await this.put(name, der)
    } finally {
      der.fill(0)
    }
  }

  async getPrivateKey (name: string): Promise<KeyObject | undefined> {
    const der = await this.get(name)
    if (der == null) return undefined
    try {
      return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' })
    } catch {
      throw new KeyStoreCorruptError(`sealed record ${name} does not hold a private key`)
    } finally {
      der.fill(0)
    }
  }

  /** Wipes the store key from memory; records stay sealed on disk */
  lock (): void {
    this.storeKey?.fill(0)
    this.storeKey = undefined
  }

  toJSON (): string {
    return `[UnlockedKeys ${this.id}]`
  }

  [inspect.custom] (): string {
    return this.toJSON()
  }

  private key (): Uint8Array {
    if (this.storeKey == null) throw new KeyStoreLockedError()
    return this.storeKey
  }

  private pathOf (name: string): string {
    return join(this.dir, checkName(name) + RECORD_SUFFIX)
  }
}

/** Overwrites a file with random bytes, syncs, then unlinks it: a plaintext key leaves no copy in the file's blocks (on a filesystem that writes in place) */
export async function wipeFile (file: string): Promise<void> {
  const handle = await open(file, 'r+')
  try {
    const { size } = await handle.stat()
    for (let at = 0; at < size; at += 65536) {
      const chunk = randomBytes(Math.min(65536, size - at))
      await handle.write(chunk, 0, chunk.length, at)
    }
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rm(file)
}

function checkName (name: string): string {
  if (!RECORD_NAME.test(name)) throw new RangeError('a sealed record name is a lowercase role name, optionally followed by -<id>')
  return name
}

function storeAad (id: string): Uint8Array {
  return utf8(`keyfair/v1/node-keystore\0${id}`)
}

function recordInfo (name: string): string {
  return `keyfair/v1/node-record:${name}`
}

function recordAad (id: string, name: string): Uint8Array {
  return utf8(`keyfair/v1/node-record\0${id}\0${name}`)
}
