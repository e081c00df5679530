// The queue of chunk ranges a download hands to its providers' streams. While the
// download is still finding out which providers help (provider-trim.ts), ranges are
// small, so a provider it rests stops within a few MiB: with 16 MiB ranges each of
// three local providers had delivered 32 MiB (2 streams × 16) before a rest took
// effect. Once that is settled, a stream takes adjacent small ranges together, so a
// long download does not pay a stream set-up per few MiB.

export interface ChunkRange {
  from: number
  count: number
}

/** Runs of consecutive missing chunk indices (ascending), each at most `size` long */
export function splitRanges (missing: readonly number[], size: number): ChunkRange[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError('range size must be a positive integer')
  const ranges: ChunkRange[] = []
  for (let i = 0; i < missing.length;) {
    let count = 1
    while (i + count < missing.length && missing[i + count] === missing[i]! + count && count < size) count++
    ranges.push({ from: missing[i]!, count })
    i += count
  }
  return ranges
}

/**
 * Takes the first range of the queue, joined with the ranges that follow it without a
 * gap, up to `max` chunks; a range only partly taken keeps its rest at the queue's head
 */
export function takeRange (queue: ChunkRange[], max: number): ChunkRange | undefined {
  const head = queue.shift()
  if (head == null) return undefined
  const range = { ...head }
  while (range.count < max) {
    const next = queue[0]
    if (next == null || next.from !== range.from + range.count) break
    const room = max - range.count
    if (next.count <= room) {
      range.count += next.count
      queue.shift()
    } else {
      range.count += room
      queue[0] = { from: next.from + room, count: next.count - room }
    }
  }
  return range
}
