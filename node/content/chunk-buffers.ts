// The buffers a download joins its chunks into on their way to disk, reused chunk after
// chunk. A chunk arrives as the transport's pieces (a few dozen buffers of up to 64 KiB);
// copied into one buffer of this pool as soon as the frame is whole, the pieces are
// garbage at once, and the joined chunk is hashed off the libp2p thread (the hash needs
// one buffer) and written with one system call.

export class ChunkBuffers {
  /** the size of every pooled buffer: the largest stored chunk of the content */
  readonly size: number
  private readonly keep: number
  private readonly free: Uint8Array[] = []

  /** `keep`: how many idle buffers stay for reuse (more in use at once are allocated and dropped) */
  constructor (size: number, keep: number) {
    this.size = size
    this.keep = keep
  }

  /** The pieces joined into a buffer of the pool (a fresh one when they do not fit) */
  join (pieces: readonly Uint8Array[], length: number): Uint8Array {
    const buffer = length <= this.size ? (this.free.pop() ?? new Uint8Array(this.size)) : new Uint8Array(length)
    let offset = 0
    for (const piece of pieces) {
      buffer.set(piece, offset)
      offset += piece.length
    }
    return buffer.subarray(0, length)
  }

  /** A joined chunk is done with: its buffer goes back to the pool */
  release (chunk: Uint8Array): void {
    if (chunk.buffer.byteLength === this.size && chunk.byteOffset === 0 && this.free.length < this.keep) {
      this.free.push(new Uint8Array(chunk.buffer as ArrayBuffer, 0, this.size))
    }
  }
}
