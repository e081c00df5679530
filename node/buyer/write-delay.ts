// A slow disk on demand for tests: KEYFAIR_WRITE_DELAY_MS (test use only) delays each chunk write.
import { setTimeout as sleep } from 'node:timers/promises'

export const WRITE_DELAY_ENV = 'KEYFAIR_WRITE_DELAY_MS'

/** The delay the environment asks for, 0 when unset or not a whole number */
export function writeDelayMs (env: NodeJS.ProcessEnv = process.env): number {
  const text = env[WRITE_DELAY_ENV]
  return text != null && /^\d+$/.test(text) ? Number(text) : 0
}

export async function delayChunkWrite (signal: AbortSignal): Promise<void> {
  const ms = writeDelayMs()
  if (ms > 0) await sleep(ms, undefined, { signal })
}
