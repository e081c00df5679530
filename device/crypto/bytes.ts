// Byte helpers for the v1 layouts: big-endian integers, I2OSP/OS2IP, JWK base64url.
import { createHash, timingSafeEqual } from 'node:crypto'
import { InvalidArgumentError, OutOfRangeError } from './errors.ts'

export function u8 (x: number): Uint8Array {
  if (!Number.isInteger(x) || x < 0 || x > 0xff) throw new OutOfRangeError('u8 out of range')
  return Uint8Array.of(x)
}

export function u16 (x: number): Uint8Array {
  if (!Number.isInteger(x) || x < 0 || x > 0xffff) throw new OutOfRangeError('u16 out of range')
  return Uint8Array.of(x >>> 8, x & 0xff)
}

export function u32 (x: number): Uint8Array {
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new OutOfRangeError('u32 out of range')
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, x, false)
  return out
}

export function readU16 (bytes: Uint8Array, offset = 0): number {
  if (offset < 0 || offset + 2 > bytes.length) throw new OutOfRangeError('u16 read past end')
  return ((bytes[offset] ?? 0) << 8) | (bytes[offset + 1] ?? 0)
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

export function utf8 (s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

/** Constant-time for equal lengths; different lengths are simply unequal */
export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  return timingSafeEqual(a, b)
}

export function xorBytes (a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new InvalidArgumentError('xor operands differ in length')
  const out = new Uint8Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0)
  return out
}

export function sha256 (...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function fromHex (hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new InvalidArgumentError('invalid hex')
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

export function bitLength (x: bigint): number {
  if (x < 0n) throw new OutOfRangeError('negative integer')
  if (x === 0n) return 0
  // through hex: a quarter of the characters of binary (modInverse asks once per step)
  const hex = x.toString(16)
  return (hex.length - 1) * 4 + 32 - Math.clz32(parseInt(hex[0]!, 16))
}

/** Byte length of a modulus: the k of I2OSP(x, k) */
export function byteLength (n: bigint): number {
  return Math.ceil(bitLength(n) / 8)
}

/** Integer to exactly `length` big-endian bytes (RFC 8017 I2OSP) */
export function i2osp (x: bigint, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0) throw new InvalidArgumentError('invalid length')
  if (x < 0n) throw new OutOfRangeError('integer is negative')
  if (x === 0n) return new Uint8Array(length)
  const hex = x.toString(16)
  if (hex.length > length * 2) throw new OutOfRangeError('integer too large for length')
  return new Uint8Array(Buffer.from(hex.padStart(length * 2, '0'), 'hex'))
}

/** I2OSP(x, n) of the layouts: x in exactly the byte length of modulus n */
export function i2ospMod (x: bigint, n: bigint): Uint8Array {
  if (x >= n) throw new OutOfRangeError('integer not below the modulus')
  return i2osp(x, byteLength(n))
}

/** Big-endian bytes to integer (RFC 8017 OS2IP) */
export function os2ip (bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n
  return BigInt('0x' + toHex(bytes))
}

/** JWK integer: base64url of the big-endian bytes without leading zeros (RFC 7518 §6.3) */
export function bigintToBase64url (x: bigint): string {
  if (x < 0n) throw new OutOfRangeError('integer is negative')
  let hex = x.toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  return Buffer.from(hex, 'hex').toString('base64url')
}

export function base64urlToBigint (s: string): bigint {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new InvalidArgumentError('invalid base64url')
  return os2ip(new Uint8Array(Buffer.from(s, 'base64url')))
}
