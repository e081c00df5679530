// How a play behind a download learns which chunks are on disk. Each message to the device
// costs both processes a system call and a wake-up, so the device is told the latest
// gap-free count a few megabytes at a time (one message in flight), at once when the
// download is whole, and after a short wait when a slow download has not reached the step:
// the play never waits long for a chunk that is on disk.
import { reasonOf } from './errors.ts'
import type { StoredOrder } from './stored-order.ts'
import type { Logger } from '@libp2p/interface'

/** plaintext bytes of new chunks that make a message to the device worth sending at once */
export const FEED_STEP_BYTES = 4 * 1024 * 1024
/** the longest a chunk on disk waits to be told of when the step is not reached */
export const FEED_WAIT_MS = 50

export interface PlayFeedInit {
  order: StoredOrder
  chunkSize: number
  /** tells the device that `available` chunks, from the first, are on disk */
  tell: (available: number) => Promise<void>
  log: Logger
}

export class PlayFeed {
  private readonly init: PlayFeedInit
  private readonly step: number
  private told: number
  private telling = false
  private stopped = false
  private timer?: ReturnType<typeof setTimeout>

  constructor (init: PlayFeedInit) {
    this.init = init
    this.step = Math.max(1, Math.floor(FEED_STEP_BYTES / init.chunkSize))
    this.told = init.order.contiguous
  }

  /** the count the play starts from */
  get available (): number {
    return this.told
  }

  start (): void {
    this.stopped = false
    this.init.order.onAdvance = () => { this.advanced() }
  }

  stop (): void {
    this.stopped = true
    this.init.order.onAdvance = undefined
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private advanced (): void {
    if (this.due()) void this.flush()
    else this.timer ??= setTimeout(() => { void this.flush() }, FEED_WAIT_MS)
  }

  /** a step's worth is untold, or the last chunks are */
  private due (): boolean {
    const { contiguous, chunkCount } = this.init.order
    return contiguous - this.told >= this.step || (contiguous === chunkCount && contiguous > this.told)
  }

  private async flush (): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.telling || this.init.order.contiguous <= this.told) return
    this.telling = true
    try {
      do {
        this.told = this.init.order.contiguous
        await this.init.tell(this.told)
      } while (this.due())
    } catch (err: unknown) {
      this.init.log('telling the device of chunk %d failed: %s', this.told, reasonOf(err))
    } finally {
      this.telling = false
    }
    // what arrived while the device was being told, short of a step, waits a little
    if (this.init.order.contiguous > this.told && !this.stopped) this.advanced()
  }
}
