// The device process's wire: frames of u32 big-endian length ‖ dag-cbor over its
// stdin/stdout. Requests { id, op, args }; answers { id, ok, result | error };
// progress events { id, progress } before the answer of a long operation.
import { decodeObject, encodeObject } from './objects/codec.ts'
import { BadDeviceRequestError } from './errors.ts'

/** Large enough for the manifest of a ~1 TiB work at 1 MiB chunks */
export const MAX_DEVICE_FRAME = 64 * 1024 * 1024

export interface DeviceRequest {
  id: number
  op: string
  args: Record<string, unknown>
}

export type DeviceReply =
  | { id: number, ok: true, result: unknown }
  | { id: number, ok: false, error: { code: string, message: string } }
  | { id: number, progress: Record<string, unknown> }

export function encodeFrame (value: unknown): Uint8Array {
  const body = encodeObject(value)
  if (body.length > MAX_DEVICE_FRAME) throw new BadDeviceRequestError(`device frame of ${body.length} bytes exceeds ${MAX_DEVICE_FRAME}`)
  const frame = new Uint8Array(4 + body.length)
  new DataView(frame.buffer).setUint32(0, body.length)
  frame.set(body, 4)
  return frame
}

/** Reassembles frames from arbitrary pieces of a byte stream */
export class FrameDecoder {
  private buffer: Uint8Array = new Uint8Array(0)

  push (piece: Uint8Array): unknown[] {
    this.buffer = this.buffer.length === 0 ? piece : Buffer.concat([this.buffer, piece])
    const out: unknown[] = []
    while (this.buffer.length >= 4) {
      const length = new DataView(this.buffer.buffer, this.buffer.byteOffset, 4).getUint32(0)
      if (length > MAX_DEVICE_FRAME) throw new BadDeviceRequestError(`device frame of ${length} bytes exceeds ${MAX_DEVICE_FRAME}`)
      if (this.buffer.length < 4 + length) break
      out.push(decodeObject(this.buffer.subarray(4, 4 + length)))
      this.buffer = this.buffer.subarray(4 + length)
    }
    return out
  }

  get pending (): number {
    return this.buffer.length
  }
}
