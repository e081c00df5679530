// The device's permanent memory (docs/protocol.md, Sealed device): a key store file sealed under the
// passphrase (scrypt → AES-256-GCM), and sealed records (licences, open purchases)
// under a random record key that lives only inside the key store. Files are 0600
// in a 0700 directory; nothing here is readable without the passphrase.
import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto'
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { GCM_NONCE_LENGTH, ownBytes } from '../crypto/aead.ts'
import { utf8 } from '../crypto/bytes.ts'
import { decodeObject, encodeObject } from '../objects/codec.ts'
import { createShapeChecks } from '../objects/validate.ts'
import { deviceIdOf } from '../pki/names.ts'
import { DeviceExistsError, DeviceNotInitialisedError, InsecureStoreError, StoreCorruptError } from '../errors.ts'
import { fileExists, writeFileAtomic } from './files.ts'
import { DEFAULT_KDF, checkKdf, checkPassphrase, generateStoreKey, openRecord, openWithPassphrase, sealRecord, sealWithPassphrase } from './seal.ts'
import type { KdfParams } from './seal.ts'
import type { KeyObject } from 'node:crypto'

export { DEFAULT_KDF, MIN_KDF_N, MIN_PASSPHRASE_LENGTH } from './seal.ts'
export type { KdfParams } from './seal.ts'

const generateKeyPairAsync = promisify(generateKeyPair)
export const DEFAULT_DEVICE_KEY_BITS = 3072
export const MIN_DEVICE_KEY_BITS = 2048

const FILE_MODE = 0o600
const DIR_MODE = 0o700
const KEYSTORE_FILE = 'keystore.cbor'
const RECORD_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/
const check = createShapeChecks(message => new StoreCorruptError(`device key store is damaged: ${message}`))

/** What unlocking gives, held only inside the device process */
export interface DeviceSecrets {
  deviceId: string
  signingKey: KeyObject
  encryptionKey: KeyObject
  recordKey: Uint8Array
}

export interface CreateOptions {
  bits?: number
  kdf?: KdfParams
}

export type RecordKind = 'licence' | 'purchase'

export class KeyStore {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  get file (): string {
    return join(this.dir, KEYSTORE_FILE)
  }

  async exists (): Promise<boolean> {
    return fileExists(this.file)
  }

  /** Generates both device keys inside this process and seals them under the passphrase */
  async create (passphrase: Uint8Array, options: CreateOptions = {}): Promise<DeviceSecrets> {
    checkPassphrase(passphrase)
    const bits = options.bits ?? DEFAULT_DEVICE_KEY_BITS
    if (!Number.isInteger(bits) || bits < MIN_DEVICE_KEY_BITS || bits > 8192) throw new RangeError(`device key bits must be ${MIN_DEVICE_KEY_BITS}..8192`)
    const kdf = options.kdf ?? DEFAULT_KDF
    checkKdf(kdf)
    if (await this.exists()) throw new DeviceExistsError()
    await mkdir(this.dir, { recursive: true, mode: DIR_MODE })
    // two independent keys: the signing key never decrypts, the encryption key never signs
    const [signing, encryption] = await Promise.all([
      generateKeyPairAsync('rsa', { modulusLength: bits }),
      generateKeyPairAsync('rsa', { modulusLength: bits })
    ])
    const recordKey = generateStoreKey()
    const deviceId = deviceIdOf(signing.publicKey)
    const inner = {
      signing: exportPkcs8(signing.privateKey),
      encryption: exportPkcs8(encryption.privateKey),
      records: recordKey
    }
    const plain = encodeObject(inner)
    let sealed
    try {
      sealed = await sealWithPassphrase(passphrase, plain, keystoreAad(deviceId), kdf)
    } finally {
      plain.fill(0)
      inner.signing.fill(0)
      inner.encryption.fill(0)
    }
    const file = { v: 1, deviceId, kdf: { alg: 'scrypt', ...sealed.kdf, salt: sealed.salt }, nonce: sealed.nonce, box: sealed.box }
    await writeFileAtomic(this.file, encodeObject(file), FILE_MODE)
    return { deviceId, signingKey: signing.privateKey, encryptionKey: encryption.privateKey, recordKey }
  }

  /** The device id is public: it names the device in certificates */
  async deviceId (): Promise<string> {
    return (await this.readFile()).deviceId
  }

  /** Opens the store; a wrong passphrase fails here and writes nothing */
  async open (passphrase: Uint8Array): Promise<DeviceSecrets> {
    const file = await this.readFile()
    const plain = await openWithPassphrase(passphrase, file, keystoreAad(file.deviceId))
    try {
      const inner = check.expectRecord(decodeObject(plain), 'secrets')
      const signing = check.expectBytes(inner.signing, 'signing key', 16384, 1)
      const encryption = check.expectBytes(inner.encryption, 'encryption key', 16384, 1)
      const records = check.expectBytes(inner.records, 'record key', 32, 32)
      const secrets = {
        deviceId: file.deviceId,
        signingKey: importPkcs8(signing),
        encryptionKey: importPkcs8(encryption),
        recordKey: new Uint8Array(records)
      }
      if (deviceIdOf(createPublicKey(secrets.signingKey)) !== file.deviceId) throw new StoreCorruptError('device id does not match the signing key')
      return secrets
    } finally {
      plain.fill(0)
    }
  }

  async putRecord (secrets: DeviceSecrets, kind: RecordKind, id: string, value: unknown): Promise<void> {
    const dir = await this.recordDir(kind)
    const plain = encodeObject(value)
    const sealed = sealRecord(secrets.recordKey, recordInfo(kind), recordAad(secrets.deviceId, kind, checkId(id)), plain)
    plain.fill(0)
    await writeFileAtomic(join(dir, id), sealed, FILE_MODE)
  }

  /** A record sealed by another device (or altered) does not open: RecordUnreadableError */
  async getRecord (secrets: DeviceSecrets, kind: RecordKind, id: string): Promise<unknown> {
    let data: Uint8Array
    try {
      data = await readFile(join(this.dir, kind, checkId(id)))
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
    const plain = openRecord(secrets.recordKey, recordInfo(kind), recordAad(secrets.deviceId, kind, id), data, `sealed ${kind} ${id} does not open on this device`)
    try {
      return decodeObject(plain)
    } finally {
      plain.fill(0)
    }
  }

  async listRecords (kind: RecordKind): Promise<string[]> {
    try {
      return (await readdir(join(this.dir, kind))).filter(name => RECORD_ID.test(name)).sort()
    } catch (err: any) {
      if (err.code === 'ENOENT') return []
      throw err
    }
  }

  async deleteRecord (kind: RecordKind, id: string): Promise<void> {
    await rm(join(this.dir, kind, checkId(id)), { force: true })
  }

  /** Certificates and other public files live beside the store, unencrypted */
  async writePublic (name: string, data: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: DIR_MODE })
    await writeFileAtomic(join(this.dir, checkId(name)), data, 0o644)
  }

  async readPublic (name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.dir, checkId(name)), 'utf8')
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
  }

  private async recordDir (kind: RecordKind): Promise<string> {
    const dir = join(this.dir, kind)
    await mkdir(dir, { recursive: true, mode: DIR_MODE })
    return dir
  }

  private async readFile (): Promise<{ deviceId: string, kdf: KdfParams, salt: Uint8Array, nonce: Uint8Array, box: Uint8Array }> {
    let info
    try {
      info = await stat(this.file)
    } catch (err: any) {
      if (err.code === 'ENOENT') throw new DeviceNotInitialisedError()
      throw err
    }
    if ((info.mode & 0o077) !== 0) {
      throw new InsecureStoreError(`${this.file} has mode ${(info.mode & 0o777).toString(8)}: run chmod 600 on it`)
    }
    const o = check.expectRecord(decodeStore(await readFile(this.file)), 'key store')
    if (o.v !== 1) throw new StoreCorruptError('device key store has an unsupported version')
    const kdf = check.expectRecord(o.kdf, 'kdf')
    if (kdf.alg !== 'scrypt') throw new StoreCorruptError('device key store names an unknown KDF')
    const params = { N: check.expectUint(kdf.N, 'kdf.N'), r: check.expectUint(kdf.r, 'kdf.r', 64), p: check.expectUint(kdf.p, 'kdf.p', 16) }
    checkKdf(params)
    return {
      deviceId: check.expectString(o.deviceId, 'deviceId', 64),
      kdf: params,
      salt: check.expectBytes(kdf.salt, 'kdf.salt', 64, 16),
      nonce: check.expectBytes(o.nonce, 'nonce', GCM_NONCE_LENGTH, GCM_NONCE_LENGTH),
      box: check.expectBytes(o.box, 'box', 65536, 17)
    }
  }
}

function decodeStore (bytes: Uint8Array): unknown {
  try {
    return decodeObject(bytes)
  } catch {
    throw new StoreCorruptError('device key store is not readable')
  }
}

function keystoreAad (deviceId: string): Uint8Array {
  return utf8(`keyfair/v1/keystore\0${deviceId}`)
}

function recordInfo (kind: RecordKind): string {
  return `keyfair/v1/record:${kind}`
}

function recordAad (deviceId: string, kind: RecordKind, id: string): Uint8Array {
  return utf8(`keyfair/v1/record\0${deviceId}\0${kind}\0${id}`)
}

function checkId (id: string): string {
  if (!RECORD_ID.test(id)) throw new RangeError('record id must be 1..128 of [A-Za-z0-9_-]')
  return id
}

function exportPkcs8 (key: KeyObject): Uint8Array {
  return ownBytes(key.export({ type: 'pkcs8', format: 'der' }))
}

function importPkcs8 (der: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' })
  } catch {
    throw new StoreCorruptError('device key store holds an unreadable key')
  }
}
