// A yes/no question on the terminal, for a command that spends money (`buy`). Asked only
// where a person can answer: a script (stdin not a terminal, or --json) goes on without it.
import { createInterface } from 'node:readline/promises'
import { KeyfairError } from '../protocols/errors.ts'

/** The person at the terminal said no: nothing was done */
export class DeclinedError extends KeyfairError {
  static readonly code = 'ERR_DECLINED'
  constructor (message: string) {
    super(message, DeclinedError.code)
  }
}

/** Whether to ask at all: a terminal on stdin, and no --yes or --json */
export function canAsk (options: { yes?: boolean, json?: boolean }, input: NodeJS.ReadStream = process.stdin): boolean {
  return options.yes !== true && options.json !== true && input.isTTY === true
}

/** true for y or yes (any case); anything else, an empty line or the end of input is no */
export async function askYes (question: string, input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<boolean> {
  const lines = createInterface({ input, output, terminal: false })
  try {
    const ended = new Promise<string>(resolve => { lines.once('close', () => { resolve('') }) })
    const answer = await Promise.race([lines.question(`${question} [y/N] `), ended])
    return /^\s*y(es)?\s*$/i.test(answer)
  } finally {
    lines.close()
  }
}
