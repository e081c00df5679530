// The CLI's progress bar for a streamed command: bytes done of the true total in MiB or
// GiB, the rate and the time left, on stderr. Only on a terminal and without --json, so
// scripts reading the output see the result alone.
import { Presets, SingleBar } from 'cli-progress'
import { formatBytes } from './format.ts'

export interface ByteBar {
  /** bytes done of total; `note` follows the numbers (escrows paid, bytes played) */
  update: (bytes: number, total: number, note?: string) => void
  /** a new note: on its own line until bytes are counted (escrows chosen, say), then after them */
  note: (note: string) => void
  stop: () => void
}

const SILENT: ByteBar = { update: () => {}, note: () => {}, stop: () => {} }

export function byteBar (label: string, options: { json?: boolean }, stream: NodeJS.WriteStream = process.stderr): ByteBar {
  if (options.json === true || stream.isTTY !== true) return SILENT
  const bar = new SingleBar({
    format: `${label} [{bar}] {done} / {size}  {rate}  ETA {eta_formatted}  {note}`,
    stream,
    hideCursor: true,
    clearOnComplete: false,
    etaBuffer: 50
  }, Presets.shades_classic)
  let started: { at: number, bytes: number } | undefined
  let lastNote = ''
  let last = { bytes: 0, total: 0 }
  const payload = (bytes: number, total: number, note: string): Record<string, string> => {
    // the rate of this run: bytes already on disk at its start do not count
    const seconds = started == null ? 0 : (performance.now() - started.at) / 1000
    const rate = seconds > 0.5 ? `${formatBytes((bytes - started!.bytes) / seconds)}/s` : ''
    return { done: formatBytes(bytes), size: formatBytes(total), rate, note }
  }
  return {
    update (bytes, total, note = lastNote) {
      lastNote = note
      last = { bytes, total }
      if (started == null) {
        started = { at: performance.now(), bytes }
        bar.start(Math.max(total, 1), bytes, payload(bytes, total, note))
        return
      }
      bar.setTotal(Math.max(total, 1))
      bar.update(bytes, payload(bytes, total, note))
    },
    note (note) {
      lastNote = note
      if (started == null) stream.write(`${label}: ${note}\n`)
      else bar.update(last.bytes, payload(last.bytes, last.total, note))
    },
    stop () { if (started != null) bar.stop() }
  }
}
