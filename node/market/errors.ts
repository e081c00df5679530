// What the market refuses: offers it does not know, and portable media it cannot write or read.
import { KeyfairError } from '../../protocols/errors.ts'

export class UnknownOfferError extends KeyfairError {
  static readonly code = 'ERR_UNKNOWN_OFFER'
  constructor (id: string, message = `no offer ${id} is known here`) {
    super(message, UnknownOfferError.code)
  }
}

/** An export's target directory exists already: media are written to a new one */
export class MediaExistsError extends KeyfairError {
  static readonly code = 'ERR_EXISTS'
  constructor (path: string) {
    super(`${path} exists already: give a new directory`, MediaExistsError.code)
  }
}

/** A directory to import that holds no exported content */
export class NotMediaError extends KeyfairError {
  static readonly code = 'ERR_NOT_MEDIA'
  constructor (path: string, missing: string, options?: ErrorOptions) {
    super(`${path} holds no keyfair content (no ${missing})`, NotMediaError.code, options)
  }
}
