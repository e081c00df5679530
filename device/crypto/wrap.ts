// Share wrap for escrow j (docs/protocol.md, Share wrap): RSA-KEM + DEM, so the KEM part can be blinded.
// c = x^e_T mod n, kek = HKDF-SHA256(I2OSP(x, n), content salt, "keyfair/v1/share" ‖ u16(j), 32),
// dem = nonce(12) ‖ AES-256-GCM(kek, share, AAD = offer salt ‖ u16(j)) ‖ tag(16).
import { hkdfSync, randomBytes } from 'node:crypto'
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH, gcmOpen, gcmSeal } from './aead.ts'
import { concat, i2ospMod, readU16, u16, utf8 } from './bytes.ts'
import { randomInRange } from './bigint.ts'
import { BadShareError, InvalidArgumentError, OutOfRangeError, ShareAuthError } from './errors.ts'
import { rawPublic } from './rsa.ts'
import { SHARE_LENGTH } from './shamir.ts'
import { SALT_LENGTH } from './content.ts'

export const SHARE_INFO_LABEL = 'keyfair/v1/share'
export const KEK_LENGTH = 32
export const DEM_LENGTH = GCM_NONCE_LENGTH + SHARE_LENGTH + GCM_TAG_LENGTH

export interface WrapShareInput {
  n: bigint
  eT: bigint
  j: number
  share: Uint8Array
  contentSalt: Uint8Array
  offerSalt: Uint8Array
  /** KEM secret, uniform in [2, n − 2] when omitted; injecting it is for tests */
  x?: bigint
  /** DEM nonce, random when omitted; injecting it is for tests */
  nonce?: Uint8Array
}

export interface WrappedShare {
  c: bigint
  dem: Uint8Array
}

export interface UnwrapShareInput {
  x: bigint
  n: bigint
  j: number
  dem: Uint8Array
  contentSalt: Uint8Array
  offerSalt: Uint8Array
}

function checkJ (j: number): void {
  if (!Number.isInteger(j) || j < 1 || j > 0xffff) throw new InvalidArgumentError('share index must be in [1, 65535]')
}

function checkSalt (salt: Uint8Array, what: string): void {
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_LENGTH) throw new InvalidArgumentError(`${what} must be ${SALT_LENGTH} bytes`)
}

function checkX (x: bigint, n: bigint): void {
  if (typeof n !== 'bigint' || n < 5n) throw new InvalidArgumentError('invalid modulus')
  if (typeof x !== 'bigint' || x < 2n || x > n - 2n) throw new OutOfRangeError('x not in [2, n - 2]')
}

/** kek_j = HKDF-SHA256(ikm = I2OSP(x, n), salt = content salt, info = "keyfair/v1/share" ‖ u16(j), 32) */
export function shareKek (x: bigint, n: bigint, j: number, contentSalt: Uint8Array): Uint8Array {
  checkX(x, n)
  checkJ(j)
  checkSalt(contentSalt, 'content salt')
  const ikm = i2ospMod(x, n)
  try {
    return new Uint8Array(hkdfSync('sha256', ikm, contentSalt, concat(utf8(SHARE_INFO_LABEL), u16(j)), KEK_LENGTH))
  } finally {
    ikm.fill(0)
  }
}

export function wrapShare (input: WrapShareInput): WrappedShare {
  const { n, eT, j, share, contentSalt, offerSalt } = input
  checkJ(j)
  checkSalt(contentSalt, 'content salt')
  checkSalt(offerSalt, 'offer salt')
  if (!(share instanceof Uint8Array) || share.length !== SHARE_LENGTH) throw new BadShareError(`share must be ${SHARE_LENGTH} bytes`)
  if (readU16(share) !== j) throw new BadShareError('share does not carry index j')
  if (typeof n !== 'bigint' || n < 5n) throw new InvalidArgumentError('invalid modulus')
  if (typeof eT !== 'bigint' || eT < 3n) throw new InvalidArgumentError('invalid exponent')
  const x = input.x ?? randomInRange(2n, n - 2n)
  checkX(x, n)
  const nonce = input.nonce ?? new Uint8Array(randomBytes(GCM_NONCE_LENGTH))
  if (!(nonce instanceof Uint8Array) || nonce.length !== GCM_NONCE_LENGTH) throw new InvalidArgumentError('nonce must be 12 bytes')
  const c = rawPublic(x, eT, n)
  const kek = shareKek(x, n, j, contentSalt)
  try {
    return { c, dem: concat(nonce, gcmSeal(kek, nonce, concat(offerSalt, u16(j)), share)) }
  } finally {
    kek.fill(0)
  }
}

/** Opens dem_j with the unblinded x_j; throws ShareAuthError unless everything matches */
export function unwrapShare (input: UnwrapShareInput): Uint8Array {
  const { x, n, j, dem, contentSalt, offerSalt } = input
  checkJ(j)
  checkSalt(contentSalt, 'content salt')
  checkSalt(offerSalt, 'offer salt')
  if (!(dem instanceof Uint8Array) || dem.length !== DEM_LENGTH) throw new ShareAuthError(`wrapped share must be ${DEM_LENGTH} bytes`)
  const kek = shareKek(x, n, j, contentSalt)
  let share: Uint8Array | undefined
  try {
    share = gcmOpen(kek, dem.subarray(0, GCM_NONCE_LENGTH), concat(offerSalt, u16(j)), dem.subarray(GCM_NONCE_LENGTH))
  } finally {
    kek.fill(0)
  }
  if (share === undefined) throw new ShareAuthError()
  if (readU16(share) !== j) {
    share.fill(0)
    throw new BadShareError('unwrapped share does not carry index j')
  }
  return share
}
