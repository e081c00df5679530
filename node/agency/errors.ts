import { KeyfairError } from '../../protocols/errors.ts'

export class AgencyNotInitialisedError extends KeyfairError {
  static readonly code = 'ERR_AGENCY_NOT_INITIALISED'
  constructor (repo: string) {
    super(`no agency in ${repo} (run: keyfair agency init --repo ${repo})`, AgencyNotInitialisedError.code)
  }
}

export class AgencyExistsError extends KeyfairError {
  static readonly code = 'ERR_AGENCY_EXISTS'
  constructor (repo: string) {
    super(`an agency already exists in ${repo}`, AgencyExistsError.code)
  }
}

export class EnrollCodeUnknownError extends KeyfairError {
  static readonly code = 'ERR_ENROLL_CODE_UNKNOWN'
  constructor () {
    super('unknown enrollment code', EnrollCodeUnknownError.code)
  }
}

export class EnrollCodeUsedError extends KeyfairError {
  static readonly code = 'ERR_ENROLL_CODE_USED'
  constructor () {
    super('this enrollment code has already been used', EnrollCodeUsedError.code)
  }
}

export class EnrollCodeExpiredError extends KeyfairError {
  static readonly code = 'ERR_ENROLL_CODE_EXPIRED'
  constructor (expiredAt: Date) {
    super(`this enrollment code expired at ${expiredAt.toISOString()}`, EnrollCodeExpiredError.code)
  }
}

export class EnrollCodeKindError extends KeyfairError {
  static readonly code = 'ERR_ENROLL_CODE_KIND'
  constructor (kind: string, asked: string) {
    super(`this enrollment code is for ${kind === 'device' ? 'a device' : 'an escrow'}, not for ${asked === 'device' ? 'a device' : 'an escrow'}`, EnrollCodeKindError.code)
  }
}

// the agency refuses a CSR with the same error the PKI layer checks it with
export { BadCsrError } from '../../device/pki/errors.ts'

export class DeviceRevokedError extends KeyfairError {
  static readonly code = 'ERR_DEVICE_REVOKED'
  constructor (deviceId: string) {
    super(`device ${deviceId} has been revoked and cannot enroll again`, DeviceRevokedError.code)
  }
}

/** An escrow CSR whose key belongs to a revoked certificate. */
export class KeyRevokedError extends KeyfairError {
  static readonly code = 'ERR_KEY_REVOKED'
  constructor () {
    super('this key belongs to a revoked certificate; generate a new key', KeyRevokedError.code)
  }
}

export class CertificateNotFoundError extends KeyfairError {
  static readonly code = 'ERR_CERT_NOT_FOUND'
  constructor (target: string) {
    super(`no certificate with serial, device id or peer id '${target}'`, CertificateNotFoundError.code)
  }
}

/** The agency did not answer a request for its revocation list (down, unreachable, or too slow). */
export class AgencyUnreachableError extends KeyfairError {
  static readonly code = 'ERR_AGENCY_UNREACHABLE'
  constructor (address: string, reason: string, options?: ErrorOptions) {
    super(`the agency at ${address} did not answer (${reason}); the revocation list held stays in force`, AgencyUnreachableError.code, options)
  }
}
