import { BadMessageError } from '../errors.ts'

/** Small shape checks for decoded messages; each failure is a BadMessageError naming the field. */

export function expectRecord (value: unknown, what = 'message'): Record<string, unknown> {
  if (value == null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new BadMessageError(`${what} must be a map`)
  }
  return value as Record<string, unknown>
}

export function expectString (value: unknown, field: string, maxLength: number): string {
  if (typeof value !== 'string') throw new BadMessageError(`${field} must be a string`)
  if (value.length > maxLength) throw new BadMessageError(`${field} longer than ${maxLength} characters`)
  return value
}

export function expectBytes (value: unknown, field: string, maxLength: number, minLength = 0): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new BadMessageError(`${field} must be bytes`)
  if (value.byteLength > maxLength || value.byteLength < minLength) {
    throw new BadMessageError(`${field} must be ${minLength}..${maxLength} bytes`)
  }
  return value
}

export function expectUint (value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new BadMessageError(`${field} must be an integer in 0..${max}`)
  }
  return value
}

export function expectArray (value: unknown, field: string, maxItems: number): unknown[] {
  if (!Array.isArray(value)) throw new BadMessageError(`${field} must be a list`)
  if (value.length > maxItems) throw new BadMessageError(`${field} has more than ${maxItems} items`)
  return value
}
