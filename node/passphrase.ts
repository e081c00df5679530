// Where the repo's passphrase comes from: a file (--passphrase-file), the environment
// ($KEYFAIR_PASSPHRASE), or a prompt on the terminal that shows nothing of what is typed. Never argv:
// other users can read a process's arguments. One passphrase per repo: it unlocks the
// node's key store (agency, escrow, seller secrets) and the sealed device.
import { readFile, stat } from 'node:fs/promises'
import { KeyfairError } from '../protocols/errors.ts'
import { InsecureFileError } from './errors.ts'

export const PASSPHRASE_ENV = 'KEYFAIR_PASSPHRASE'

export class PassphraseRequiredError extends KeyfairError {
  static readonly code = 'ERR_PASSPHRASE_REQUIRED'
  constructor () {
    super(`the repo's passphrase is needed: use --passphrase-file <file>, set ${PASSPHRASE_ENV}, or run on a terminal`, PassphraseRequiredError.code)
  }
}

export class PassphraseMismatchError extends KeyfairError {
  static readonly code = 'ERR_PASSPHRASE_MISMATCH'
  constructor () {
    super('the two passphrases differ', PassphraseMismatchError.code)
  }
}

export class PassphraseAbortedError extends KeyfairError {
  static readonly code = 'ERR_PASSPHRASE_ABORTED'
  constructor () {
    super('no passphrase given: the prompt was closed', PassphraseAbortedError.code)
  }
}

export interface PassphraseSource {
  file?: string
  env?: NodeJS.ProcessEnv
  /** ask twice (creating a store) */
  confirm?: boolean
  input?: NodeJS.ReadableStream & { isTTY?: boolean }
  output?: NodeJS.WritableStream
  /** what the prompt asks for (default: the repo's passphrase) */
  label?: string
}

/** Whether a passphrase can be had without asking: a file named, or the environment set */
export function passphraseGiven (file: string | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return file != null || (env[PASSPHRASE_ENV] != null && env[PASSPHRASE_ENV] !== '')
}

export async function readPassphrase (source: PassphraseSource = {}): Promise<string> {
  if (source.file != null) {
    const info = await stat(source.file)
    if ((info.mode & 0o077) !== 0) throw new InsecureFileError(source.file, info.mode)
    // one line: a trailing newline from `echo` is not part of the passphrase
    return (await readFile(source.file, 'utf8')).replace(/\r?\n$/, '')
  }
  const fromEnv = (source.env ?? process.env)[PASSPHRASE_ENV]
  if (fromEnv != null && fromEnv !== '') return fromEnv
  const input = source.input ?? process.stdin
  if (input.isTTY !== true) throw new PassphraseRequiredError()
  const output = source.output ?? process.stderr
  const label = source.label ?? 'passphrase'
  const first = await prompt(source.confirm === true ? `new ${label} for this repo:` : `${label}:`, input, output)
  if (source.confirm === true && (await prompt(`${label} again:`, input, output)) !== first) throw new PassphraseMismatchError()
  return first
}

/**
 * One line from the terminal. The prompt stays on screen and nothing typed is echoed, not even
 * a mask: its length is a secret too. The terminal is in raw mode (echo off) before the
 * prompt is drawn, and there is no key to reveal what was typed.
 */
async function prompt (message: string, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<string> {
  // loaded only to ask: a node that never prompts does not keep the prompt library resident
  const { default: password } = await import('@inquirer/password')
  try {
    return await password({ message, mask: false, toggleMask: false }, { input, output })
  } catch (err: any) {
    // Ctrl-C or Ctrl-D on the prompt
    if (err?.name === 'ExitPromptError' || err?.name === 'AbortPromptError') throw new PassphraseAbortedError()
    throw err
  }
}
