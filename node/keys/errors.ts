// Errors of the node's key store. Codes match the sealed device's where the meaning is the
// same (a wrong passphrase is ERR_WRONG_PASSPHRASE wherever it is typed). Messages name
// files and records, never key material.
import { CryptoError } from '../../device/crypto/errors.ts'
import { KeyfairError } from '../../protocols/errors.ts'

export class WrongPassphraseError extends KeyfairError {
  static readonly code = 'ERR_WRONG_PASSPHRASE'
  constructor (message = 'wrong passphrase for this repo\'s key store') {
    super(message, WrongPassphraseError.code)
  }
}

export class WeakPassphraseError extends KeyfairError {
  static readonly code = 'ERR_WEAK_PASSPHRASE'
  constructor (message = 'passphrase must be at least 8 characters') {
    super(message, WeakPassphraseError.code)
  }
}

export class KeyStoreCorruptError extends KeyfairError {
  static readonly code = 'ERR_STORE_CORRUPT'
  constructor (message = 'the key store is damaged') {
    super(message, KeyStoreCorruptError.code)
  }
}

export class SealedRecordUnreadableError extends KeyfairError {
  static readonly code = 'ERR_RECORD_UNREADABLE'
  constructor (message = 'a sealed key does not open with this key store') {
    super(message, SealedRecordUnreadableError.code)
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
