// What a devnet directory remembers between runs: its shape, each node's listen address
// (so the agency and the nodes keep the addresses their peers stored), the sample works,
// and the passphrase its repos are sealed under.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileExists, writeFileAtomic } from '../../device/store/files.ts'
import { KeyfairError } from '../errors.ts'
import type { DevnetShape } from './shape.ts'

export interface SampleWork {
  seller: string
  title: string
  content: string
  offer: string
  /** the plaintext the seller published */
  file: string
}

export interface DevnetState {
  v: 1
  shape: DevnetShape
  /** node name → its libp2p listen address (without /p2p) */
  listen: Record<string, string>
  works: SampleWork[]
}

export class UnfinishedDevnetError extends KeyfairError {
  static readonly code = 'ERR_DEVNET_UNFINISHED'
  constructor (dir: string) {
    super(`${dir} holds a devnet whose first start did not finish: remove the directory and run again`, UnfinishedDevnetError.code)
  }
}

const stateFile = (dir: string): string => join(dir, 'devnet.json')

/** The recorded devnet, or undefined for a directory that holds none yet */
export async function readDevnetState (dir: string): Promise<DevnetState | undefined> {
  try {
    return JSON.parse(await readFile(stateFile(dir), 'utf8')) as DevnetState
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw err
  }
  // repos without a record: a first start stopped half-way (enrollments cannot be replayed)
  if (await fileExists(join(dir, 'agency'))) throw new UnfinishedDevnetError(dir)
  return undefined
}

export async function writeDevnetState (dir: string, state: DevnetState): Promise<void> {
  await writeFileAtomic(stateFile(dir), JSON.stringify(state, null, 2) + '\n', 0o644)
}

/** The passphrase of the devnet's repos: $KEYFAIR_PASSPHRASE, else kept in <dir>/passphrase (0600) */
export async function devnetPassphrase (dir: string, env: NodeJS.ProcessEnv): Promise<{ passphrase: string, file?: string }> {
  const given = env.KEYFAIR_PASSPHRASE
  if (given != null && given !== '') return { passphrase: given }
  const file = join(dir, 'passphrase')
  try {
    return { passphrase: (await readFile(file, 'utf8')).trim(), file }
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw err
  }
  const passphrase = randomBytes(18).toString('base64url')
  await writeFileAtomic(file, passphrase + '\n', 0o600)
  return { passphrase, file }
}
