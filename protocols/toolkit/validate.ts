import { createShapeChecks } from '../../device/objects/validate.ts'
import { BadMessageError } from '../errors.ts'

/** Small shape checks for decoded messages; each failure is a BadMessageError naming the field. */
export const {
  expectRecord,
  expectString,
  expectBytes,
  expectUint,
  expectArray,
  expectBoolean
} = createShapeChecks(message => new BadMessageError(message))
