// Where the repo's passphrase comes from: a file (--passphrase-file), the environment
// ($KEYFAIR_PASSPHRASE), or a prompt on the terminal with echo off. Never argv:
// other users can read a process's arguments. One passphrase per repo: it unlocks the
// node's key store (agency, escrow, seller secrets) and the sealed device.
import { readFile, stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
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

export interface PassphraseSource {
  file?: string
  env?: NodeJS.ProcessEnv
  /** ask twice (creating a store) */
  confirm?: boolean
  input?: NodeJS.ReadableStream & { isTTY?: boolean }
  output?: NodeJS.WritableStream
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
  const first = await prompt(source.confirm === true ? 'new passphrase for this repo: ' : 'passphrase: ', input, output)
  if (source.confirm === true && (await prompt('again: ', input, output)) !== first) throw new PassphraseMismatchError()
  return first
}

async function prompt (question: string, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<string> {
  output.write(question)
  const rl = createInterface({ input, output, terminal: true })
  // echo off: readline writes what is typed through this hook
  ;(rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {}
  try {
    return await new Promise<string>(resolve => rl.question('', resolve))
  } finally {
    rl.close()
    output.write('\n')
  }
}
