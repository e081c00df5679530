// Typed errors of the pure crypto layer. Each has a stable `name` (its class name) and `code`.
// Messages are fixed texts plus public indices or lengths: never key material,
// shares, x, r, K or plaintext.

import { KeyfairError } from '../error-root.ts'

/** The family of the crypto layer's errors: never thrown itself, each member names its own code */
export abstract class CryptoError extends KeyfairError {
  constructor (message: string, code: string, options?: ErrorOptions) {
    super(message, code, options)
  }
}

export class InvalidArgumentError extends CryptoError {
  static readonly code = 'ERR_INVALID_ARG'

  constructor (message = 'invalid argument') {
    super(message, InvalidArgumentError.code)
  }
}

/** An integer outside the range an operation accepts (e.g. b not in [1, n-1]) */
export class OutOfRangeError extends CryptoError {
  static readonly code = 'ERR_OUT_OF_RANGE'

  constructor (message = 'value out of range') {
    super(message, OutOfRangeError.code)
  }
}

/** Iterating an encryption twice, or asking for its manifest before it finished */
export class InvalidStateError extends CryptoError {
  static readonly code = 'ERR_INVALID_STATE'

  constructor (message = 'invalid state') {
    super(message, InvalidStateError.code)
  }
}

export class ManifestError extends CryptoError {
  static readonly code = 'ERR_MANIFEST'

  constructor (message = 'invalid manifest') {
    super(message, ManifestError.code)
  }
}

/** Stored chunk does not match the manifest (length or SHA-256): blame the provider */
export class ChunkHashError extends CryptoError {
  static readonly code = 'ERR_CHUNK_HASH'

  constructor (message = 'chunk does not match the manifest') {
    super(message, ChunkHashError.code)
  }
}

/** AES-GCM tag check failed for a chunk (wrong key, index, work, last flag or bits) */
export class ChunkAuthError extends CryptoError {
  static readonly code = 'ERR_CHUNK_AUTH'

  constructor (message = 'chunk failed authentication') {
    super(message, ChunkAuthError.code)
  }
}

/** A chunk arrived out of sequence */
export class ChunkOrderError extends CryptoError {
  static readonly code = 'ERR_CHUNK_ORDER'

  constructor (message = 'chunk out of order') {
    super(message, ChunkOrderError.code)
  }
}

/** The chunk stream ended before the final chunk */
export class TruncatedError extends CryptoError {
  static readonly code = 'ERR_TRUNCATED'

  constructor (message = 'content truncated') {
    super(message, TruncatedError.code)
  }
}

/** A chunk arrived after the final chunk */
export class ExtraChunkError extends CryptoError {
  static readonly code = 'ERR_EXTRA_CHUNK'

  constructor (message = 'chunk after the final chunk') {
    super(message, ExtraChunkError.code)
  }
}

/** A malformed, duplicate or out-of-field Shamir share */
export class BadShareError extends CryptoError {
  static readonly code = 'ERR_BAD_SHARE'

  constructor (message = 'bad share') {
    super(message, BadShareError.code)
  }
}

export class TooFewSharesError extends CryptoError {
  static readonly code = 'ERR_TOO_FEW_SHARES'

  constructor (message = 'fewer shares than the threshold') {
    super(message, TooFewSharesError.code)
  }
}

/** Well-formed shares that do not interpolate to a 256-bit secret (some share is wrong) */
export class InconsistentSharesError extends CryptoError {
  static readonly code = 'ERR_SHARES_INCONSISTENT'

  constructor (message = 'shares do not combine to a valid secret') {
    super(message, InconsistentSharesError.code)
  }
}

/** The DEM of a wrapped share failed authentication (wrong x, j, salts or bits) */
export class ShareAuthError extends CryptoError {
  static readonly code = 'ERR_SHARE_AUTH'

  constructor (message = 'wrapped share failed authentication') {
    super(message, ShareAuthError.code)
  }
}

/** An escrow's unblinded answer does not satisfy x^e_T mod n == c */
export class BlindCheckError extends CryptoError {
  static readonly code = 'ERR_BLIND_CHECK'

  constructor (message = 'unblinded answer does not match the wrapped share') {
    super(message, BlindCheckError.code)
  }
}

/** A price exponent unusable with a key (even, too small, or not coprime to lambda(n)) */
export class ExponentError extends CryptoError {
  static readonly code = 'ERR_EXPONENT'

  constructor (message = 'unusable exponent') {
    super(message, ExponentError.code)
  }
}

/** RSA key parameters that are inconsistent, or a key of the wrong kind */
export class RsaKeyError extends CryptoError {
  static readonly code = 'ERR_RSA_KEY'

  constructor (message = 'invalid RSA key') {
    super(message, RsaKeyError.code)
  }
}

/** RSA-OAEP unwrap of K_dev failed */
export class DeviceKeyError extends CryptoError {
  static readonly code = 'ERR_DEVICE_KEY'

  constructor (message = 'device key unwrap failed') {
    super(message, DeviceKeyError.code)
  }
}

/** An encoded message that is not EME-OAEP (SHA-256, MGF1-SHA-256, empty label) */
export class OaepDecodeError extends CryptoError {
  static readonly code = 'ERR_OAEP_DECODE'

  constructor (message = 'not an OAEP-encoded message') {
    super(message, OaepDecodeError.code)
  }
}
