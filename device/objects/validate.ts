// Shape checks for decoded objects, shared by the device (its own errors) and the
// protocols (BadMessageError): one implementation, the error type passed in.

export interface ShapeChecks {
  expectRecord: (value: unknown, what?: string) => Record<string, unknown>
  expectString: (value: unknown, field: string, maxLength: number) => string
  expectBytes: (value: unknown, field: string, maxLength: number, minLength?: number) => Uint8Array
  expectUint: (value: unknown, field: string, max?: number) => number
  expectArray: (value: unknown, field: string, maxItems: number) => unknown[]
  expectBoolean: (value: unknown, field: string) => boolean
}

export function createShapeChecks (fail: (message: string) => Error): ShapeChecks {
  return {
    expectRecord (value, what = 'message') {
      if (value == null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
        throw fail(`${what} must be a map`)
      }
      return value as Record<string, unknown>
    },
    expectString (value, field, maxLength) {
      if (typeof value !== 'string') throw fail(`${field} must be a string`)
      if (value.length > maxLength) throw fail(`${field} longer than ${maxLength} characters`)
      return value
    },
    expectBytes (value, field, maxLength, minLength = 0) {
      if (!(value instanceof Uint8Array)) throw fail(`${field} must be bytes`)
      if (value.byteLength > maxLength || value.byteLength < minLength) {
        throw fail(minLength === maxLength ? `${field} must be ${maxLength} bytes` : `${field} must be ${minLength}..${maxLength} bytes`)
      }
      return value
    },
    expectUint (value, field, max = Number.MAX_SAFE_INTEGER) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
        throw fail(`${field} must be an integer in 0..${max}`)
      }
      return value
    },
    expectArray (value, field, maxItems) {
      if (!Array.isArray(value)) throw fail(`${field} must be a list`)
      if (value.length > maxItems) throw fail(`${field} has more than ${maxItems} items`)
      return value
    },
    expectBoolean (value, field) {
      if (typeof value !== 'boolean') throw fail(`${field} must be a boolean`)
      return value
    }
  }
}
