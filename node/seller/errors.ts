// What a seller refuses when it publishes a work or issues a licence.
import { KeyfairError } from '../../protocols/errors.ts'

/** The path given to publish is not one readable regular file */
export class FileNotPublishableError extends KeyfairError {
  static readonly code = 'ERR_FILE'
  constructor (message = 'not a readable regular file; publish one file', options?: ErrorOptions) {
    super(message, FileNotPublishableError.code, options)
  }
}

/** An open offer with one escrow: that escrow alone could unwrap the key from the public offer */
export class OpenNeedsThresholdError extends KeyfairError {
  static readonly code = 'ERR_OPEN_NEEDS_THRESHOLD'
  constructor () {
    super('an open offer needs at least 2 escrows to release its key (e.g. --escrows 2-of-3): with 1, that escrow alone could unwrap K from the public offer', OpenNeedsThresholdError.code)
  }
}

/** Fewer usable escrows, named and found in the DHT, than the offer's n */
export class TooFewEscrowsError extends KeyfairError {
  static readonly code = 'ERR_TOO_FEW_ESCROWS'
  constructor (found: number, needed: number) {
    super(`found ${found} usable escrows, ${needed} needed`, TooFewEscrowsError.code)
  }
}

/**
 * An escrow the seller named cannot be used (unreachable, not certified, revoked): the
 * escrow's own refusal's code when it has one
 */
export class NamedEscrowUnusableError extends KeyfairError {
  static readonly code = 'ERR_ESCROW'
  constructor (address: string, cause: unknown) {
    const code = cause instanceof Error && 'code' in cause && typeof cause.code === 'string' ? cause.code : NamedEscrowUnusableError.code
    super(`escrow ${address}: ${cause instanceof Error ? cause.message : String(cause)}`, code, { cause })
  }
}

/** The seller's key store holds no content key for a work it has an offer for */
export class NoContentKeyError extends KeyfairError {
  static readonly code = 'ERR_NO_CONTENT_KEY'
  constructor (cid: string) {
    super(`this seller holds no key for ${cid}`, NoContentKeyError.code)
  }
}
