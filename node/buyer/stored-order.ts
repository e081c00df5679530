// Which chunks of a download are on disk, and how many from the first are there without
// a gap: a play that follows the download may read exactly those.

export class StoredOrder {
  private stored = new Uint8Array(0)
  private count = 0
  private prefix = 0
  private started = false
  private markFirst!: () => void
  /** resolves once a chunk is on disk (one verified from a provider, or already there) */
  readonly firstStored: Promise<void>
  /** called when the gap-free prefix grows */
  onAdvance?: (contiguous: number) => void

  constructor () {
    this.firstStored = new Promise(resolve => { this.markFirst = resolve })
  }

  /** chunks from the first that are on disk with none missing before them */
  get contiguous (): number {
    return this.prefix
  }

  get chunkCount (): number {
    return this.count
  }

  /** The download's starting point: `missing` are the chunks not yet on disk */
  begin (chunkCount: number, missing: number[]): void {
    this.count = chunkCount
    this.stored = new Uint8Array(chunkCount).fill(1)
    for (const i of missing) this.stored[i] = 0
    this.started = true
    this.advance()
    if (missing.length < chunkCount) this.markFirst()
  }

  /** Chunk `index` was verified and written */
  add (index: number): void {
    if (!this.started || index < 0 || index >= this.count) return
    this.stored[index] = 1
    this.markFirst()
    if (index === this.prefix) this.advance()
  }

  private advance (): void {
    const before = this.prefix
    while (this.prefix < this.count && this.stored[this.prefix] === 1) this.prefix++
    if (this.prefix > before) this.onAdvance?.(this.prefix)
  }
}
