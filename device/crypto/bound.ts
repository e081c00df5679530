// Device-bound licences (docs/protocol.md, Device-bound licences; the patent's Fig. 5): K_esc = K ⊕ K_dev goes to the
// escrows, K_dev is wrapped to the device's encryption key with RSA-OAEP-SHA256.
// Open offers use K_dev = 0.
import { constants, createPublicKey, privateDecrypt, publicEncrypt } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { bytesEqual, os2ip, xorBytes } from './bytes.ts'
import { ownBytes } from './aead.ts'
import { DeviceKeyError, InvalidArgumentError, OaepDecodeError, RsaKeyError } from './errors.ts'
import { oaepDecodeSha256 } from './oaep.ts'
import { rsaPublicParams } from './rsa.ts'

export const DEVICE_KEY_LENGTH = 32
export const MIN_DEVICE_KEY_BITS = 2048

function check32 (b: Uint8Array, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== DEVICE_KEY_LENGTH) throw new InvalidArgumentError(`${what} must be 32 bytes`)
}

/** K_dev of an open offer: all zero, so K_esc = K */
export function openOfferDeviceKey (): Uint8Array {
  return new Uint8Array(DEVICE_KEY_LENGTH)
}

/** K_esc = K ⊕ K_dev */
export function splitDeviceBound (key: Uint8Array, kDev: Uint8Array): Uint8Array {
  check32(key, 'content key')
  check32(kDev, 'K_dev')
  return xorBytes(key, kDev)
}

/** K = K_esc ⊕ K_dev */
export function combineDeviceBound (kEsc: Uint8Array, kDev: Uint8Array): Uint8Array {
  check32(kEsc, 'K_esc')
  check32(kDev, 'K_dev')
  return xorBytes(kEsc, kDev)
}

function checkDeviceKey (key: KeyObject, type: 'public' | 'private'): void {
  if (key == null || typeof key !== 'object' || key.asymmetricKeyType !== 'rsa') {
    throw new RsaKeyError('device key must be an RSA KeyObject')
  }
  if (type === 'private' && key.type !== 'private') throw new RsaKeyError('expected the device private key')
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_DEVICE_KEY_BITS) {
    throw new RsaKeyError(`device key must have at least ${MIN_DEVICE_KEY_BITS} bits`)
  }
}

/** RSA-OAEP-SHA256 (MGF1-SHA256, empty label) of K_dev to the device's certified encryption key */
export function wrapDeviceKey (kDev: Uint8Array, devicePublicKey: KeyObject): Uint8Array {
  check32(kDev, 'K_dev')
  checkDeviceKey(devicePublicKey, 'public')
  return ownBytes(publicEncrypt({ key: devicePublicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, kDev))
}

export function unwrapDeviceKey (ciphertext: Uint8Array, devicePrivateKey: KeyObject): Uint8Array {
  if (!(ciphertext instanceof Uint8Array)) throw new InvalidArgumentError('ciphertext must be bytes')
  checkDeviceKey(devicePrivateKey, 'private')
  let out: Buffer
  try {
    out = privateDecrypt({ key: devicePrivateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ciphertext)
  } catch {
    throw new DeviceKeyError()
  }
  const kDev = ownBytes(out)
  if (kDev.length !== DEVICE_KEY_LENGTH) {
    kDev.fill(0)
    throw new DeviceKeyError('unwrapped device key has the wrong length')
  }
  return kDev
}

/**
 * Whether the licence's K_dev wrap `w` is an RSA ciphertext for this key at all: exactly
 * the modulus length and below n. A wrap that is not cannot be decrypted by anyone.
 */
export function isDeviceWrapCiphertext (w: Uint8Array, devicePublicKey: KeyObject): boolean {
  checkDeviceKey(devicePublicKey, 'public')
  if (!(w instanceof Uint8Array)) return false
  const { n } = rsaPublicParams(devicePublicKey)
  const k = devicePublicKey.asymmetricKeyDetails?.modulusLength ?? 0
  return w.length === Math.ceil(k / 8) && os2ip(w) < n
}

/**
 * The device's side of a dispute over its K_dev wrap: the raw RSA value m = w^d mod n
 * (k bytes), from which anyone holding the certified public key checks m^e = w and
 * decodes the OAEP padding themselves. Only m leaves the device, never d.
 */
export function openDeviceWrap (w: Uint8Array, devicePrivateKey: KeyObject): Uint8Array {
  checkDeviceKey(devicePrivateKey, 'private')
  if (!isDeviceWrapCiphertext(w, createPublicKey(devicePrivateKey))) throw new DeviceKeyError('the K_dev wrap is not a ciphertext for this key')
  try {
    return ownBytes(privateDecrypt({ key: devicePrivateKey, padding: constants.RSA_NO_PADDING }, w))
  } catch {
    throw new DeviceKeyError('raw RSA private operation on the K_dev wrap failed')
  }
}

/** Checks m^e mod n == w under the certified device key (the OpenSSL public operation) */
export function checkDeviceWrapOpening (w: Uint8Array, m: Uint8Array, devicePublicKey: KeyObject): boolean {
  if (!isDeviceWrapCiphertext(w, devicePublicKey)) return false
  if (!(m instanceof Uint8Array) || m.length !== w.length) return false
  if (os2ip(m) >= rsaPublicParams(devicePublicKey).n) return false
  let back: Buffer
  try {
    back = publicEncrypt({ key: devicePublicKey, padding: constants.RSA_NO_PADDING }, m)
  } catch {
    return false
  }
  return bytesEqual(back, w)
}

/** K_dev inside an opened wrap m, or undefined when m is not OAEP of a 32-byte value */
export function deviceKeyFromOpening (m: Uint8Array): Uint8Array | undefined {
  let message: Uint8Array
  try {
    message = oaepDecodeSha256(m)
  } catch (err) {
    if (err instanceof OaepDecodeError) return undefined
    throw err
  }
  if (message.length !== DEVICE_KEY_LENGTH) {
    message.fill(0)
    return undefined
  }
  return message
}
