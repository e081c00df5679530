import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * V8's full garbage collection, for a node that must give memory back after an attack
 * (the inbound budget calls it, rarely): taken from V8 at run time, as `--expose-gc`
 * would give it, so a node needs no extra command-line flag.
 */
export function garbageCollector (): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (typeof exposed === 'function') return exposed
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('gc')
    return typeof gc === 'function' ? () => { (gc as () => void)() } : undefined
  } catch {
    return undefined
  }
}
