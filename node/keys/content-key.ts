// A published work's content key K as its sealed record holds it: K, the content salt,
// and the offers made with it.
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { createShapeChecks } from '../../device/objects/validate.ts'
import { KeyStoreCorruptError } from './errors.ts'

export interface ContentKey {
  key: Uint8Array
  salt: Uint8Array
  offers: string[]
}

const check = createShapeChecks(message => new KeyStoreCorruptError(`sealed content key is damaged: ${message}`))

export function encodeContentKey (secret: ContentKey): Uint8Array {
  return encodeObject({ v: 1, key: secret.key, salt: secret.salt, offers: secret.offers })
}

/** Copies K out of the decoded record; the caller wipes `bytes` and, after use, `key` */
export function decodeContentKey (bytes: Uint8Array): ContentKey {
  let decoded: unknown
  try {
    decoded = decodeObject(bytes)
  } catch {
    throw new KeyStoreCorruptError('sealed content key is not readable')
  }
  const o = check.expectRecord(decoded, 'content key')
  if (o.v !== 1) throw new KeyStoreCorruptError('sealed content key has an unsupported version')
  const offers = Array.isArray(o.offers) ? o.offers.map(x => check.expectString(x, 'offer', 128)) : []
  return {
    key: new Uint8Array(check.expectBytes(o.key, 'key', 32, 32)),
    salt: new Uint8Array(check.expectBytes(o.salt, 'salt', 64, 1)),
    offers
  }
}
