// Sealing at rest, as functions of bytes: a blob under a passphrase (scrypt → AES-256-GCM,
// its KDF parameters stored beside it so they can rise later), and records under a random
// 32-byte key (a per-purpose key by HKDF-SHA256, AES-256-GCM, AAD naming what the record is).
// The device's key store and the node's key store both seal this way.
import { hkdfSync, randomBytes, scrypt } from 'node:crypto'
import { promisify } from 'node:util'
import { GCM_NONCE_LENGTH, gcmOpen, gcmSeal, ownBytes } from '../crypto/aead.ts'
import { concat } from '../crypto/bytes.ts'
import { RecordUnreadableError, StoreCorruptError, WeakPassphraseError, WrongPassphraseError } from '../errors.ts'

const scryptAsync = promisify(scrypt) as (password: Uint8Array, salt: Uint8Array, keylen: number, options: object) => Promise<Buffer>

export interface KdfParams {
  N: number
  r: number
  p: number
}

/** OWASP's scrypt baseline: 128 MiB, a few hundred ms */
export const DEFAULT_KDF: KdfParams = { N: 2 ** 17, r: 8, p: 1 }
/** Below this a stolen store is cheap to brute-force; refused on create and on open */
export const MIN_KDF_N = 2 ** 14
/** Above this one unlock would take seconds and gigabytes */
export const MAX_KDF_N = 2 ** 20
export const MIN_PASSPHRASE_LENGTH = 8
export const SEAL_KEY_LENGTH = 32
export const KDF_SALT_LENGTH = 16

/** A blob sealed under a passphrase: what goes into the store file beside the public fields */
export interface PassphraseSealed {
  kdf: KdfParams
  salt: Uint8Array
  nonce: Uint8Array
  box: Uint8Array
}

/** Refuses KDF parameters a store may not be created or opened with */
export function checkKdf (kdf: KdfParams): void {
  const powerOfTwo = Number.isInteger(kdf.N) && kdf.N > 1 && (kdf.N & (kdf.N - 1)) === 0
  if (!powerOfTwo || kdf.N < MIN_KDF_N || kdf.N > MAX_KDF_N || !Number.isInteger(kdf.r) || kdf.r < 1 || kdf.r > 64 || !Number.isInteger(kdf.p) || kdf.p < 1 || kdf.p > 16) {
    throw new StoreCorruptError('scrypt parameters out of range (N a power of two in 2^14..2^20)')
  }
}

/** A passphrase long enough to create a store with; its bytes, UTF-8 */
export function checkPassphrase (passphrase: Uint8Array): Uint8Array {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) throw new WeakPassphraseError()
  return passphrase
}

/** scrypt(passphrase, salt) → 32-byte key-encryption key */
export async function deriveKek (passphrase: Uint8Array, salt: Uint8Array, kdf: KdfParams): Promise<Uint8Array> {
  checkKdf(kdf)
  const key = await scryptAsync(passphrase, salt, SEAL_KEY_LENGTH, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r * kdf.p })
  return ownBytes(key)
}

/** Seals `plain` under a fresh salt and nonce; `aad` binds it to what it is (e.g. the store's id) */
export async function sealWithPassphrase (passphrase: Uint8Array, plain: Uint8Array, aad: Uint8Array, kdf: KdfParams = DEFAULT_KDF): Promise<PassphraseSealed> {
  checkPassphrase(passphrase)
  const salt = new Uint8Array(randomBytes(KDF_SALT_LENGTH))
  const kek = await deriveKek(passphrase, salt, kdf)
  const nonce = new Uint8Array(randomBytes(GCM_NONCE_LENGTH))
  try {
    return { kdf: { N: kdf.N, r: kdf.r, p: kdf.p }, salt, nonce, box: gcmSeal(kek, nonce, aad, plain) }
  } finally {
    kek.fill(0)
  }
}

/**
 * Opens a passphrase-sealed blob. A wrong passphrase and an altered blob look the same to
 * GCM: both are WrongPassphraseError, and nothing is written anywhere.
 */
export async function openWithPassphrase (passphrase: Uint8Array, sealed: PassphraseSealed, aad: Uint8Array): Promise<Uint8Array> {
  const kek = await deriveKek(passphrase, sealed.salt, sealed.kdf)
  const plain = gcmOpen(kek, sealed.nonce, aad, sealed.box)
  kek.fill(0)
  if (plain === undefined) throw new WrongPassphraseError()
  return plain
}

/** A fresh random store key: the key records are sealed under */
export function generateStoreKey (): Uint8Array {
  return new Uint8Array(randomBytes(SEAL_KEY_LENGTH))
}

/** The key of one purpose (`info`) under a store key: a record opens only for its purpose */
export function recordKeyOf (storeKey: Uint8Array, info: string): Uint8Array {
  if (storeKey.length !== SEAL_KEY_LENGTH) throw new StoreCorruptError('a store key is 32 bytes')
  return new Uint8Array(hkdfSync('sha256', storeKey, new Uint8Array(0), info, SEAL_KEY_LENGTH))
}

/** nonce ‖ AES-256-GCM(HKDF(storeKey, info), plain, aad) */
export function sealRecord (storeKey: Uint8Array, info: string, aad: Uint8Array, plain: Uint8Array): Uint8Array {
  const key = recordKeyOf(storeKey, info)
  const nonce = new Uint8Array(randomBytes(GCM_NONCE_LENGTH))
  try {
    return concat(nonce, gcmSeal(key, nonce, aad, plain))
  } finally {
    key.fill(0)
  }
}

/**
 * Opens nonce ‖ box sealed by sealRecord. Another store's record, another purpose, another
 * name in the AAD or an altered byte: RecordUnreadableError with `message`.
 */
export function openRecord (storeKey: Uint8Array, info: string, aad: Uint8Array, data: Uint8Array, message?: string): Uint8Array {
  const key = recordKeyOf(storeKey, info)
  const plain = data.length > GCM_NONCE_LENGTH
    ? gcmOpen(key, data.subarray(0, GCM_NONCE_LENGTH), aad, data.subarray(GCM_NONCE_LENGTH))
    : undefined
  key.fill(0)
  if (plain === undefined) throw new RecordUnreadableError(message)
  return plain
}
