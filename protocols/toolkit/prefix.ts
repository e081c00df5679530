// A frame's length prefix: the unsigned LEB128 varint that lpStream writes and reads. Readers
// that follow frames byte by byte as they arrive share this one decoder, so every reader
// refuses the same over-long prefix at the same byte.
import { FrameTooLargeError } from '../errors.ts'

/** The longest varint length prefix (lpStream's unsigned LEB128 of a safe integer) */
export const MAX_PREFIX_BYTES = 8

/** Bytes of the unsigned LEB128 varint that prefixes a frame of `length` bytes */
export function prefixLength (length: number): number {
  let bytes = 1
  for (let rest = length; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes++
  return bytes
}

/** The unsigned LEB128 varint of `length`: a frame's prefix */
export function varint (length: number): Uint8Array {
  const out = new Uint8Array(prefixLength(length))
  let rest = length
  for (let i = 0; i < out.length; i++) {
    out[i] = (rest % 0x80) | (i < out.length - 1 ? 0x80 : 0)
    rest = Math.floor(rest / 0x80)
  }
  return out
}

/** Decodes one prefix after another, a byte at a time, across any split of the bytes */
export class PrefixReader {
  private value = 0
  private scale = 1
  private bytes = 0

  /** Whether a prefix is part-way read */
  get started (): boolean {
    return this.bytes > 0
  }

  /**
   * Takes the next byte of a prefix: the frame's length once it was the last one, else -1.
   * Throws `FrameTooLargeError` on a prefix longer than `MAX_PREFIX_BYTES`.
   */
  push (byte: number): number {
    this.value += (byte & 0x7f) * this.scale
    this.scale *= 0x80
    this.bytes++
    if ((byte & 0x80) !== 0) {
      // lpStream refuses such a prefix when it reads it
      if (this.bytes >= MAX_PREFIX_BYTES) throw new FrameTooLargeError(`frame length prefix longer than ${MAX_PREFIX_BYTES} bytes`)
      return -1
    }
    const length = this.value
    this.value = 0
    this.scale = 1
    this.bytes = 0
    return length
  }
}
