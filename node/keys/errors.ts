// Errors of the node's key store. Where the meaning is the sealed device's (a wrong passphrase
// is ERR_WRONG_PASSPHRASE wherever it is typed) the class extends the device's and only says
// it of the repo's key store. Messages name files and records, never key material.
import { CryptoError } from '../../device/crypto/errors.ts'
import {
  RecordUnreadableError, StoreCorruptError, WeakPassphraseError, WrongPassphraseError as DeviceWrongPassphraseError
} from '../../device/errors.ts'
import { KeyfairError } from '../../protocols/errors.ts'

export class WrongPassphraseError extends DeviceWrongPassphraseError {
  constructor (message = 'wrong passphrase for this repo\'s key store') {
    super(message)
  }
}

export { WeakPassphraseError } from '../../device/errors.ts'

export class KeyStoreCorruptError extends StoreCorruptError {
  constructor (message = 'the key store is damaged') {
    super(message)
  }
}

export class SealedRecordUnreadableError extends RecordUnreadableError {
  constructor (message = 'a sealed key does not open with this key store') {
    super(message)
  }
}

export class KeyStoreNotInitialisedError extends KeyfairError {
  static readonly code = 'ERR_KEYSTORE_NOT_INITIALISED'
  constructor (dir: string) {
    super(`no key store in ${dir}`, KeyStoreNotInitialisedError.code)
  }
}

export class KeyStoreExistsError extends KeyfairError {
  static readonly code = 'ERR_KEYSTORE_EXISTS'
  constructor (dir: string) {
    super(`a key store already exists in ${dir}`, KeyStoreExistsError.code)
  }
}

export class KeyStoreLockedError extends KeyfairError {
  static readonly code = 'ERR_KEYSTORE_LOCKED'
  constructor (message = 'the key store is locked: start the node with its passphrase') {
    super(message, KeyStoreLockedError.code)
  }
}

/** The sealing layer's errors (device/store/seal) as the node's, same code and message */
export function fromSealError (err: unknown): unknown {
  if (!(err instanceof CryptoError)) return err
  switch (err.code) {
    case WrongPassphraseError.code: return new WrongPassphraseError()
    case WeakPassphraseError.code: return new WeakPassphraseError()
    case SealedRecordUnreadableError.code: return new SealedRecordUnreadableError(err.message)
    case KeyStoreCorruptError.code: return new KeyStoreCorruptError(err.message)
    default: return err
  }
}
