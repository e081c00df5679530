import { randomBytes, timingSafeEqual } from 'node:crypto'
import { constants } from 'node:fs'
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { writeFileAtomic } from '../device/store/files.ts'
import { DEFAULT_CONFIG, validateConfig } from './config.ts'
import { BadConfigError, InsecureFileError, RepoExistsError, RepoLockedError, RepoNotInitialisedError } from './errors.ts'
import type { NodeConfig } from './config.ts'
import type { PrivateKey } from '@libp2p/interface'

const SECRET_MODE = 0o600

/** Where a node keeps its state: `--repo`, else `$KEYFAIR_REPO`, else `~/.keyfair`. */
export function resolveRepoPath (flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.KEYFAIR_REPO ?? join(homedir(), '.keyfair'))
}

export interface ApiEndpoint {
  url: string
  pid: number
}

/**
 * A node's repo directory:
 * - `identity.key`  libp2p private key (protobuf), mode 0600
 * - `api.token`     control API bearer token, mode 0600
 * - `config.json`   listen/bootstrap/roles defaults
 * - `api`           control API address of the running node (removed on stop)
 * - `lock`          pid of the running node
 * - `node.db`       SQLite: announcements (later: ledger, library)
 * - `keys/`         the node's key store (0600, sealed under the repo's passphrase): the agency's
 *                   CA key, the escrow's RSA key, each published work's content key
 * - `device/`       the sealed device's key store (0600), sealed licences and purchases, certificates
 * - `agency/`       the agency's root certificate and database (agency role)
 */
export class Repo {
  readonly path: string

  constructor (path: string) {
    this.path = resolve(path)
  }

  get identityFile (): string { return join(this.path, 'identity.key') }
  get tokenFile (): string { return join(this.path, 'api.token') }
  get configFile (): string { return join(this.path, 'config.json') }
  get apiFile (): string { return join(this.path, 'api') }
  get lockFile (): string { return join(this.path, 'lock') }
  get databaseFile (): string { return join(this.path, 'node.db') }
  /** the sealed device's key store, sealed records and certificates */
  get deviceDir (): string { return join(this.path, 'device') }
  /** the node's key store: role secrets sealed under the repo's passphrase */
  get keysDir (): string { return join(this.path, 'keys') }

  async exists (): Promise<boolean> {
    try {
      await stat(this.identityFile)
      return true
    } catch (err: any) {
      if (err.code === 'ENOENT') return false
      throw err
    }
  }

  /** Creates identity, token and config; refuses to overwrite an existing repo. */
  async init (config: Partial<NodeConfig> = {}): Promise<{ peerId: string }> {
    if (await this.exists()) throw new RepoExistsError(this.path)
    await mkdir(this.path, { recursive: true, mode: 0o700 })
    const merged = validateConfig({ ...DEFAULT_CONFIG, ...config }, 'config')
    const key = await generateKeyPair('Ed25519')
    await writeFileAtomic(this.configFile, JSON.stringify(merged, null, 2) + '\n', 0o644)
    await writeFileAtomic(this.tokenFile, randomBytes(32).toString('hex') + '\n', SECRET_MODE)
    // identity last: its presence is what marks the repo as initialised
    await writeFileAtomic(this.identityFile, privateKeyToProtobuf(key), SECRET_MODE)
    return { peerId: peerIdFromPrivateKey(key).toString() }
  }

  async loadIdentity (): Promise<PrivateKey> {
    const bytes = await this.readSecret(this.identityFile)
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new BadConfigError(`${this.identityFile} does not hold a libp2p private key`, { cause: err })
    }
  }

  async readToken (): Promise<string> {
    return (await this.readSecret(this.tokenFile)).toString('utf8').trim()
  }

  /** Constant-time comparison against the repo's token. */
  async checkToken (presented: string): Promise<boolean> {
    const expected = Buffer.from(await this.readToken())
    const given = Buffer.from(presented)
    return expected.length === given.length && timingSafeEqual(expected, given)
  }

  async readConfig (): Promise<NodeConfig> {
    await this.assertInitialised()
    let text: string
    try {
      text = await readFile(this.configFile, 'utf8')
    } catch (err: any) {
      if (err.code === 'ENOENT') return { ...DEFAULT_CONFIG }
      throw err
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      throw new BadConfigError(`${this.configFile} is not valid JSON`, { cause: err })
    }
    return validateConfig(parsed, this.configFile)
  }

  /** Replaces config.json with `config`, checked first so a bad value never lands */
  async writeConfig (config: NodeConfig): Promise<void> {
    await this.assertInitialised()
    const checked = validateConfig(config, this.configFile)
    await writeFileAtomic(this.configFile, JSON.stringify(checked, null, 2) + '\n', 0o644)
  }

  /** Whether a node runs on this repo now (its api file names a live process) */
  async running (): Promise<boolean> {
    const api = await this.readApiEndpoint()
    return api != null && isProcessAlive(api.pid)
  }

  async assertInitialised (): Promise<void> {
    if (!(await this.exists())) throw new RepoNotInitialisedError(this.path)
  }

  /**
   * Takes the repo for one running node. A lock left by a crashed node (its pid
   * no longer alive) is taken over.
   */
  async lock (): Promise<() => Promise<void>> {
    await this.assertInitialised()
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(this.lockFile, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, SECRET_MODE)
        await handle.writeFile(`${process.pid}\n`)
        await handle.close()
        return async () => { await rm(this.lockFile, { force: true }) }
      } catch (err: any) {
        if (err.code !== 'EEXIST') throw err
        const holder = Number.parseInt(await readFile(this.lockFile, 'utf8').catch(() => ''), 10)
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isProcessAlive(holder)) {
          throw new RepoLockedError(this.path, holder)
        }
        await rm(this.lockFile, { force: true })
      }
    }
    throw new RepoLockedError(this.path, -1)
  }

  async writeApiEndpoint (endpoint: ApiEndpoint): Promise<void> {
    await writeFileAtomic(this.apiFile, JSON.stringify(endpoint) + '\n', 0o644)
  }

  async readApiEndpoint (): Promise<ApiEndpoint | undefined> {
    try {
      const value = JSON.parse(await readFile(this.apiFile, 'utf8'))
      if (typeof value?.url === 'string' && Number.isInteger(value?.pid)) return value
      return undefined
    } catch (err: any) {
      if (err.code === 'ENOENT' || err instanceof SyntaxError) return undefined
      throw err
    }
  }

  async removeApiEndpoint (): Promise<void> {
    await rm(this.apiFile, { force: true })
  }

  /** Reads a secret file, refusing it if group or others may read it (as ssh does). */
  private async readSecret (file: string): Promise<Buffer> {
    await this.assertInitialised()
    const info = await stat(file)
    if ((info.mode & 0o077) !== 0) throw new InsecureFileError(file, info.mode)
    return readFile(file)
  }
}

/** True while a process with this pid exists (signal 0 probes without signalling). */
export function isProcessAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}

