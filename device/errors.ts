// Typed errors of the sealed device. Messages never carry key material.
import { CryptoError } from './crypto/errors.ts'

export class DeviceNotInitialisedError extends CryptoError {
  static readonly code = 'ERR_DEVICE_NOT_INITIALISED'
  constructor (message = 'no device key store here: run `keyfair device init`') {
    super(message, DeviceNotInitialisedError.code)
  }
}

export class DeviceExistsError extends CryptoError {
  static readonly code = 'ERR_DEVICE_EXISTS'
  constructor (message = 'a device key store already exists here') {
    super(message, DeviceExistsError.code)
  }
}

export class WrongPassphraseError extends CryptoError {
  static readonly code = 'ERR_WRONG_PASSPHRASE'
  constructor (message = 'wrong passphrase for the device key store') {
    super(message, WrongPassphraseError.code)
  }
}

export class WeakPassphraseError extends CryptoError {
  static readonly code = 'ERR_WEAK_PASSPHRASE'
  constructor (message = 'passphrase must be at least 8 characters') {
    super(message, WeakPassphraseError.code)
  }
}

export class DeviceLockedError extends CryptoError {
  static readonly code = 'ERR_DEVICE_LOCKED'
  constructor (message = 'the device is locked: unlock it with its passphrase') {
    super(message, DeviceLockedError.code)
  }
}

export class InsecureStoreError extends CryptoError {
  static readonly code = 'ERR_INSECURE_STORE'
  constructor (message = 'device key store is readable by other users') {
    super(message, InsecureStoreError.code)
  }
}

export class StoreCorruptError extends CryptoError {
  static readonly code = 'ERR_STORE_CORRUPT'
  constructor (message = 'device key store is damaged') {
    super(message, StoreCorruptError.code)
  }
}

export class RecordUnreadableError extends CryptoError {
  static readonly code = 'ERR_RECORD_UNREADABLE'
  constructor (message = 'sealed record does not open on this device') {
    super(message, RecordUnreadableError.code)
  }
}

export class NotEnrolledError extends CryptoError {
  static readonly code = 'ERR_NOT_ENROLLED'
  constructor (message = 'the device has no certificates: enroll it with an agency first') {
    super(message, NotEnrolledError.code)
  }
}

export class CertificateMismatchError extends CryptoError {
  static readonly code = 'ERR_CERT_MISMATCH'
  constructor (message = 'certificate does not belong to this device') {
    super(message, CertificateMismatchError.code)
  }
}

export class UnknownPurchaseError extends CryptoError {
  static readonly code = 'ERR_UNKNOWN_PURCHASE'
  constructor (message = 'no such purchase on this device') {
    super(message, UnknownPurchaseError.code)
  }
}

export class PurchaseStateError extends CryptoError {
  static readonly code = 'ERR_PURCHASE_STATE'
  constructor (message = 'purchase is not in a state for this operation') {
    super(message, PurchaseStateError.code)
  }
}

export class KeyCommitmentError extends CryptoError {
  static readonly code = 'ERR_KEY_COMMITMENT'
  constructor (message = 'the rebuilt key does not match the offer\'s key commitment') {
    super(message, KeyCommitmentError.code)
  }
}

export class NoLicenceError extends CryptoError {
  static readonly code = 'ERR_NO_LICENCE'
  constructor (message = 'this device holds no licence for that content') {
    super(message, NoLicenceError.code)
  }
}

export class LicenceExpiredError extends CryptoError {
  static readonly code = 'ERR_LICENCE_EXPIRED'
  constructor (message = 'the licence\'s offline lifetime has passed: renew it online (keyfair renew <content>)') {
    super(message, LicenceExpiredError.code)
  }
}

export class BadRenewalError extends CryptoError {
  static readonly code = 'ERR_BAD_RENEWAL'
  constructor (message = 'the renewal statement does not answer this device\'s request') {
    super(message, BadRenewalError.code)
  }
}

export class WrongDeviceError extends CryptoError {
  static readonly code = 'ERR_WRONG_DEVICE'
  constructor (message = 'the licence is bound to another device') {
    super(message, WrongDeviceError.code)
  }
}

export class BadDeviceRequestError extends CryptoError {
  static readonly code = 'ERR_BAD_DEVICE_REQUEST'
  constructor (message = 'malformed request to the device') {
    super(message, BadDeviceRequestError.code)
  }
}

export class DeviceClosedError extends CryptoError {
  static readonly code = 'ERR_DEVICE_CLOSED'
  constructor (message = 'the device process is not running') {
    super(message, DeviceClosedError.code)
  }
}

export class DeviceTimeoutError extends CryptoError {
  static readonly code = 'ERR_DEVICE_TIMEOUT'
  constructor (message = 'the device did not answer in time') {
    super(message, DeviceTimeoutError.code)
  }
}

export class PlayBusyError extends CryptoError {
  static readonly code = 'ERR_PLAY_BUSY'
  constructor (message = 'a play of this content is already following its download') {
    super(message, PlayBusyError.code)
  }
}

export class FeedStoppedError extends CryptoError {
  static readonly code = 'ERR_FEED_STOPPED'
  constructor (message = 'the download this play followed stopped') {
    super(message, FeedStoppedError.code)
  }
}

export class FeedTimeoutError extends CryptoError {
  static readonly code = 'ERR_FEED_TIMEOUT'
  constructor (message = 'no chunk of the download this play follows arrived in time') {
    super(message, FeedTimeoutError.code)
  }
}

export class ChunkDecryptsError extends CryptoError {
  static readonly code = 'ERR_CHUNK_DECRYPTS'
  constructor (message = 'the chunk decrypts under the purchased key: there is nothing to dispute') {
    super(message, ChunkDecryptsError.code)
  }
}
