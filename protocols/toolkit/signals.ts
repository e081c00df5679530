/** A signal that aborts after `ms`, or with any of the callers' signals, whichever comes first */
export function timeoutSignal (ms: number, ...callers: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any([AbortSignal.timeout(ms), ...callers.filter((s): s is AbortSignal => s != null)])
}
