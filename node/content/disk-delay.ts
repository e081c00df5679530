// A slow disk on demand, for tests only: KEYFAIR_WRITE_DELAY_MS delays each chunk a download
// writes (a buyer whose disk is slower than the network), KEYFAIR_READ_DELAY_MS each chunk a
// provider reads to serve (a provider slower than the others).
import { setTimeout as sleep } from 'node:timers/promises'

export const WRITE_DELAY_ENV = 'KEYFAIR_WRITE_DELAY_MS'
export const READ_DELAY_ENV = 'KEYFAIR_READ_DELAY_MS'

/** The delay the environment asks for, 0 when unset or not a whole number */
export function delayMs (name: typeof WRITE_DELAY_ENV | typeof READ_DELAY_ENV, env: NodeJS.ProcessEnv = process.env): number {
  const text = env[name]
  return text != null && /^\d+$/.test(text) ? Number(text) : 0
}

export async function delayChunkWrite (signal: AbortSignal): Promise<void> {
  const ms = delayMs(WRITE_DELAY_ENV)
  if (ms > 0) await sleep(ms, undefined, { signal })
}

export async function delayChunkRead (): Promise<void> {
  const ms = delayMs(READ_DELAY_ENV)
  if (ms > 0) await sleep(ms)
}
