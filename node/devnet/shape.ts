// The shape of a local marketplace: how many escrows (and the threshold a sale pays),
// sellers and buyers. Flags left out take the shape recorded in the directory, then
// the defaults.
import { UsageError } from '../errors.ts'

export interface DevnetShape {
  escrows: number
  threshold: number
  sellers: number
  buyers: number
}

export const DEFAULT_SHAPE: DevnetShape = { escrows: 3, threshold: 2, sellers: 1, buyers: 1 }

const LIMITS: Record<keyof DevnetShape, [number, number]> = {
  escrows: [1, 16],
  threshold: [1, 16],
  sellers: [1, 8],
  buyers: [0, 8]
}

export type ShapeFlags = Partial<Record<keyof DevnetShape, string>>

/** The flags given, as numbers in their bounds; checked before anything is written */
export function parseShapeFlags (flags: ShapeFlags): Partial<DevnetShape> {
  const parsed: Partial<DevnetShape> = {}
  for (const key of Object.keys(LIMITS) as Array<keyof DevnetShape>) {
    const given = flags[key]
    if (given == null) continue
    const [min, max] = LIMITS[key]
    if (!/^\d+$/.test(given) || Number(given) < min || Number(given) > max) {
      throw new UsageError(`--${key} must be a whole number from ${min} to ${max}`)
    }
    parsed[key] = Number(given)
  }
  return parsed
}

/** The shape from flags (strings as typed), a recorded shape and the defaults */
export function resolveShape (flags: ShapeFlags, recorded?: DevnetShape): DevnetShape {
  const shape = { ...DEFAULT_SHAPE, ...recorded, ...parseShapeFlags(flags) }
  // a threshold left out follows a changed number of escrows: a majority of them
  if (flags.threshold == null && flags.escrows != null && recorded == null) shape.threshold = Math.floor(shape.escrows / 2) + 1
  if (shape.threshold > shape.escrows) throw new UsageError(`--threshold ${shape.threshold} is more than the ${shape.escrows} escrows`)
  if (recorded != null && !sameShape(shape, recorded)) {
    throw new UsageError(`this directory holds a devnet of ${describeShape(recorded)}: run it with no shape flags, or use another --dir`)
  }
  return shape
}

export function sameShape (a: DevnetShape, b: DevnetShape): boolean {
  return a.escrows === b.escrows && a.threshold === b.threshold && a.sellers === b.sellers && a.buyers === b.buyers
}

export function describeShape (s: DevnetShape): string {
  return `${s.threshold}-of-${s.escrows} escrows, ${s.sellers} seller(s), ${s.buyers} buyer(s)`
}
