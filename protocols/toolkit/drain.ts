import { StreamStateError } from '@libp2p/interface'
import type { AbortOptions, Stream } from '@libp2p/interface'

/**
 * Waits for the stream's next 'drain' event: the write `send()` refused to take more of
 * has gone out. Not `stream.onDrain()`, whose promise, once settled by a first drain, is
 * never renewed: every later wait returned at once and a writer ran ahead of the window.
 */
export async function drained (stream: Stream, options: AbortOptions = {}): Promise<void> {
  const { signal } = options
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { done(); resolve() }
    const onClose = (evt: Event): void => {
      done()
      reject((evt as Event & { error?: Error }).error ?? new StreamStateError('the stream closed before it drained'))
    }
    const onAbort = (): void => { done(); reject(signal?.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}
