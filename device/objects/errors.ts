import { CryptoError } from '../crypto/errors.ts'

/** A signed object or its body does not have the v1 shape */
export class ObjectError extends CryptoError {
  static readonly code = 'ERR_BAD_OBJECT'

  constructor (message = 'malformed object') {
    super(message, ObjectError.code)
  }
}

/** A signature does not verify, or is of the wrong kind or signer type */
export class SignatureError extends CryptoError {
  static readonly code = 'ERR_BAD_SIGNATURE'

  constructor (message = 'signature does not verify') {
    super(message, SignatureError.code)
  }
}
