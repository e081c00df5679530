// Typed errors of the sealed device. Messages never carry key material.
import { CryptoError } from './crypto/errors.ts'

function deviceError (code: string, name: string, fallback: string): new (message?: string) => CryptoError {
  return class extends CryptoError {
    static readonly code = code
    constructor (message = fallback) {
      super(message, code)
      this.name = name
    }
  }
}

export const DeviceNotInitialisedError = deviceError('ERR_DEVICE_NOT_INITIALISED', 'DeviceNotInitialisedError', 'no device key store here: run `keyfair device init`')
export const DeviceExistsError = deviceError('ERR_DEVICE_EXISTS', 'DeviceExistsError', 'a device key store already exists here')
export const WrongPassphraseError = deviceError('ERR_WRONG_PASSPHRASE', 'WrongPassphraseError', 'wrong passphrase for the device key store')
export const WeakPassphraseError = deviceError('ERR_WEAK_PASSPHRASE', 'WeakPassphraseError', 'passphrase must be at least 8 characters')
export const DeviceLockedError = deviceError('ERR_DEVICE_LOCKED', 'DeviceLockedError', 'the device is locked: unlock it with its passphrase')
export const InsecureStoreError = deviceError('ERR_INSECURE_STORE', 'InsecureStoreError', 'device key store is readable by other users')
export const StoreCorruptError = deviceError('ERR_STORE_CORRUPT', 'StoreCorruptError', 'device key store is damaged')
export const RecordUnreadableError = deviceError('ERR_RECORD_UNREADABLE', 'RecordUnreadableError', 'sealed record does not open on this device')
export const NotEnrolledError = deviceError('ERR_NOT_ENROLLED', 'NotEnrolledError', 'the device has no certificates: enroll it with an agency first')
export const CertificateMismatchError = deviceError('ERR_CERT_MISMATCH', 'CertificateMismatchError', 'certificate does not belong to this device')
export const UnknownPurchaseError = deviceError('ERR_UNKNOWN_PURCHASE', 'UnknownPurchaseError', 'no such purchase on this device')
export const PurchaseStateError = deviceError('ERR_PURCHASE_STATE', 'PurchaseStateError', 'purchase is not in a state for this operation')
export const KeyCommitmentError = deviceError('ERR_KEY_COMMITMENT', 'KeyCommitmentError', 'the rebuilt key does not match the offer\'s key commitment')
export const NoLicenceError = deviceError('ERR_NO_LICENCE', 'NoLicenceError', 'this device holds no licence for that content')
export const LicenceExpiredError = deviceError('ERR_LICENCE_EXPIRED', 'LicenceExpiredError', 'the licence\'s offline lifetime has passed: renew it online (keyfair renew <content>)')
export const BadRenewalError = deviceError('ERR_BAD_RENEWAL', 'BadRenewalError', 'the renewal statement does not answer this device\'s request')
export const WrongDeviceError = deviceError('ERR_WRONG_DEVICE', 'WrongDeviceError', 'the licence is bound to another device')
export const BadDeviceRequestError = deviceError('ERR_BAD_DEVICE_REQUEST', 'BadDeviceRequestError', 'malformed request to the device')
export const DeviceClosedError = deviceError('ERR_DEVICE_CLOSED', 'DeviceClosedError', 'the device process is not running')
export const DeviceTimeoutError = deviceError('ERR_DEVICE_TIMEOUT', 'DeviceTimeoutError', 'the device did not answer in time')
export const PlayBusyError = deviceError('ERR_PLAY_BUSY', 'PlayBusyError', 'a play of this content is already following its download')
export const FeedStoppedError = deviceError('ERR_FEED_STOPPED', 'FeedStoppedError', 'the download this play followed stopped')
export const FeedTimeoutError = deviceError('ERR_FEED_TIMEOUT', 'FeedTimeoutError', 'no chunk of the download this play follows arrived in time')
export const ChunkDecryptsError = deviceError('ERR_CHUNK_DECRYPTS', 'ChunkDecryptsError', 'the chunk decrypts under the purchased key: there is nothing to dispute')
