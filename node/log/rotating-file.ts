// An append-only file that moves aside at a size: `name` → `name.1` → … → `name.<keep>`.
// Writes are synchronous so that lines keep their order and the last ones before a crash land.
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

export const DEFAULT_LOG_MAX_BYTES = 10 * 2 ** 20
export const DEFAULT_LOG_KEEP = 3

export interface RotatingFileOptions {
  maxBytes?: number
  keep?: number
}

export class RotatingFile {
  readonly path: string
  private readonly maxBytes: number
  private readonly keep: number
  private fd: number | undefined
  private size = 0

  constructor (path: string, options: RotatingFileOptions = {}) {
    this.path = path
    this.maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES
    this.keep = options.keep ?? DEFAULT_LOG_KEEP
  }

  write (text: string): void {
    const bytes = Buffer.from(text)
    if (this.fd != null && this.size > 0 && this.size + bytes.byteLength > this.maxBytes) this.rotate()
    const fd = this.open()
    writeSync(fd, bytes)
    this.size += bytes.byteLength
  }

  close (): void {
    if (this.fd != null) closeSync(this.fd)
    this.fd = undefined
  }

  private open (): number {
    if (this.fd == null) {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 })
      // not world-readable: a log names peers, purchases and paths
      this.fd = openSync(this.path, 'a', 0o600)
      this.size = fstatSync(this.fd).size
    }
    return this.fd
  }

  private rotate (): void {
    this.close()
    rmSync(`${this.path}.${this.keep}`, { force: true })
    for (let i = this.keep - 1; i >= 1; i--) {
      try { renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`) } catch (err: any) { if (err.code !== 'ENOENT') throw err }
    }
    renameSync(this.path, `${this.path}.1`)
  }
}

/** One line appended to a log file (the CLI's own unexpected errors); never throws */
export function appendLogLine (path: string, line: string): boolean {
  try {
    const file = new RotatingFile(path)
    file.write(line)
    file.close()
    return true
  } catch {
    return false
  }
}
