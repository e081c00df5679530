// What the CLI's commands share: the typed control calls to the running node, and the flags
// and durations they read.
import { Command, Option } from 'commander'
import { ControlClient } from './control/client.ts'
import type { ClientCallArgs } from './control/client.ts'
import { BadConfigError, BadRequestError } from './errors.ts'
import { NodeKeyStore, checkRepoPassphrase, kdfFromEnv } from './keys/keystore.ts'
import { PASSPHRASE_ENV, readPassphrase } from './passphrase.ts'
import { repoOf } from './cli-output.ts'
import type { AnswerOf, CallName, ProgressOf, RequestOf, StreamName } from './control/api.ts'
import type { Repo } from './repo.ts'
import type { UnlockedKeys } from './keys/keystore.ts'

/** A call's request, which may be left out when the call needs nothing, then its time budget */
type CallArgs<N extends CallName> = Record<string, never> extends RequestOf<N>
  ? [request?: RequestOf<N>, timeoutMs?: number]
  : [request: RequestOf<N>, timeoutMs?: number]

/** Commands that talk to the running node share this: resolve repo, make the call. */
export async function call<N extends CallName> (command: Command, name: N, ...[request, timeoutMs]: CallArgs<N>): Promise<AnswerOf<N>> {
  const client = new ControlClient(repoOf(command.optsWithGlobals()))
  // the request was checked against the call by this function's own signature
  return client.call(name, ...([request ?? {}, { timeoutMs }] as unknown as ClientCallArgs<N>))
}

/** A call whose progress events come as they happen; it may run for a day */
export async function stream<N extends StreamName> (command: Command, name: N, request: RequestOf<N>, onProgress: (event: ProgressOf<N>) => void): Promise<AnswerOf<N>> {
  const client = new ControlClient(repoOf(command.optsWithGlobals()))
  return client.stream(name, request, onProgress, { timeoutMs: 24 * 3600_000 })
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

export const passphraseFileOption = (what: string): Option => new Option('--passphrase-file <file>', `the repo's passphrase, from a file of mode 0600 (else $${PASSPHRASE_ENV}, else a prompt): ${what}`)

/** The repo's key store for an offline command: unlocked, or created (asking twice on a prompt) */
export async function unlockOrCreateKeys (repo: Repo, file: string | undefined): Promise<UnlockedKeys> {
  const store = new NodeKeyStore(repo.keysDir)
  if (await store.exists()) return store.unlock(await readPassphrase({ file }))
  const kdf = kdfFromEnv()
  return store.create(checkRepoPassphrase(await readPassphrase({ file, confirm: true })), { kdf })
}

/** The fields that have a value: a flag not given must not blank out a default */
export function definedOnly<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

export function integerFlag (value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new BadConfigError(`${flag} must be a whole number`)
  return Number(value)
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `30s`, `15m`, `2h`, `7d` in milliseconds. */
export function parseDuration (value: string): number {
  const match = /^(\d+)([smhd])$/.exec(value.trim())
  if (match == null) throw new BadRequestError(`bad duration '${value}' (expected e.g. 30s, 15m, 2h, 7d)`)
  return Number(match[1]) * DURATION_UNITS[match[2]!]!
}

/** Milliseconds as the largest whole unit that divides them: 30d, 12h, 90s */
export function formatDuration (ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS[unit]!
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms} ms`
}
