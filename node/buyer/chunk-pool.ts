// The buffers a download's chunks are received into, reused chunk after chunk. Each is
// as large as the content's largest stored chunk and lives as long as the download, so
// the chunks waiting to be checked and written wait in memory that is never garbage.

export class ChunkPool {
  /** the size of every pooled buffer */
  readonly size: number
  private readonly keep: number
  private readonly free: Uint8Array[] = []
  private made = 0

  /** `keep`: how many idle buffers stay for reuse (more in use at once are allocated and dropped) */
  constructor (size: number, keep: number) {
    this.size = size
    this.keep = keep
  }

  /** A buffer of at least `length` bytes: a pooled one, or a fresh one when none is idle or it is too small */
  take (length: number): Uint8Array {
    const reused = length <= this.size ? this.free.pop() : undefined
    if (reused != null) return reused
    this.made++
    return new Uint8Array(Math.max(length, this.size))
  }

  /** Buffers allocated so far, pooled or not: what reuse saved shows against the chunks received */
  get allocated (): number {
    return this.made
  }

  /** A chunk is done with: the buffer it was received into goes back to the pool */
  give (chunk: Uint8Array): void {
    if (chunk.buffer.byteLength !== this.size || chunk.byteOffset !== 0 || this.free.length >= this.keep) return
    this.free.push(new Uint8Array(chunk.buffer as ArrayBuffer, 0, this.size))
  }
}
