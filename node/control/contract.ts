// The building blocks of the control API's contract: a call's request validator tied to its
// request, answer and progress types, and the small checks every validator is made of. A
// failed check is a BadRequestError naming the field, answered as 400 before any route runs.
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { BadRequestError } from '../errors.ts'

/** One control call: its validator, and (as types only) its request, answer and progress */
export interface Call<Request, Answer, Progress = never> {
  readonly validate: (body: unknown) => Request
  /** never set: carries the answer and progress types to the client */
  readonly types?: { answer: Answer, progress: Progress }
}

export function call<Request, Answer, Progress = never> (validate: (body: unknown) => Request): Call<Request, Answer, Progress> {
  return { validate }
}

/** A call that takes nothing: any JSON object is accepted and read as `{}` */
export type Empty = Record<string, never>

export function empty (body: unknown): Empty {
  fields(body)
  return {}
}

export function fields (body: unknown): Record<string, unknown> {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('request body must be a JSON object')
  return body as Record<string, unknown>
}

export function requireString (value: unknown, message: string): string {
  if (typeof value !== 'string') throw new BadRequestError(message)
  return value
}

export function optionalString (value: unknown, message: string): string | undefined {
  if (value == null) return undefined
  if (typeof value !== 'string') throw new BadRequestError(message)
  return value
}

export function optionalBoolean (value: unknown, name: string): boolean | undefined {
  if (value == null) return undefined
  if (typeof value !== 'boolean') throw new BadRequestError(`${name} must be true or false`)
  return value
}

export function stringList (value: unknown, message: string, check: (s: string) => boolean = () => true): string[] {
  if (!Array.isArray(value) || !value.every(x => typeof x === 'string' && check(x))) throw new BadRequestError(message)
  return value as string[]
}

export function optionalInt (value: unknown, name: string, min: number, max: number): number | undefined {
  if (value == null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequestError(`${name} must be an integer in ${min}..${max}`)
  }
  return value
}

export function requiredInt (value: unknown, name: string, min: number, max: number): number {
  const n = optionalInt(value, name, min, max)
  if (n == null) throw new BadRequestError(`${name} is required`)
  return n
}

export function isPeerIdString (value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    peerIdFromString(value)
    return true
  } catch {
    return false
  }
}

export function isCidString (value: string): boolean {
  try {
    CID.parse(value)
    return true
  } catch {
    return false
  }
}

/** Only the keys whose value is defined: an absent optional field stays absent */
export function defined<T extends object> (value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}
