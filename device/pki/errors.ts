// Typed errors of the X.509 layer. Like the crypto errors they carry a stable
// `name` (the class name) and `code`, and are KeyfairErrors: they cross a wire and the
// control API as they are.
import { CryptoError } from '../crypto/errors.ts'

/** The family of the X.509 layer's errors: never thrown itself */
export abstract class PkiError extends CryptoError {
  constructor (message: string, code: string) {
    super(message, code)
  }
}

/** Not a parseable certificate, or not the kind keyfair uses (RSA, X.509 v3) */
export class BadCertificateError extends PkiError {
  static readonly code = 'ERR_BAD_CERT'
  constructor (message = 'not a usable certificate') {
    super(message, BadCertificateError.code)
  }
}

/** Not issued and signed by the trusted root */
export class CertificateUntrustedError extends PkiError {
  static readonly code = 'ERR_CERT_UNTRUSTED'
  constructor (message = 'certificate is not issued by the trusted agency root') {
    super(message, CertificateUntrustedError.code)
  }
}

export class CertificateExpiredError extends PkiError {
  static readonly code = 'ERR_CERT_EXPIRED'
  constructor (message = 'certificate has expired') {
    super(message, CertificateExpiredError.code)
  }
}

export class CertificateNotYetValidError extends PkiError {
  static readonly code = 'ERR_CERT_NOT_YET_VALID'
  constructor (message = 'certificate is not valid yet') {
    super(message, CertificateNotYetValidError.code)
  }
}

export class CertificateRevokedError extends PkiError {
  static readonly code = 'ERR_CERT_REVOKED'
  constructor (message = 'certificate has been revoked') {
    super(message, CertificateRevokedError.code)
  }
}

/** Key usage, subject unit or CA flag do not fit the purpose the caller asked for */
export class CertificatePurposeError extends PkiError {
  static readonly code = 'ERR_CERT_PURPOSE'
  constructor (message = 'certificate is not for this purpose') {
    super(message, CertificatePurposeError.code)
  }
}

/** A revocation list that cannot be parsed, is not signed by the root, or is dated in the future */
export class CrlInvalidError extends PkiError {
  static readonly code = 'ERR_CRL_INVALID'
  constructor (message = 'invalid certificate revocation list') {
    super(message, CrlInvalidError.code)
  }
}

/** No revocation list yet, or the one held is past its nextUpdate */
export class CrlStaleError extends PkiError {
  static readonly code = 'ERR_CRL_STALE'
  constructor (message = 'no current certificate revocation list') {
    super(message, CrlStaleError.code)
  }
}

/** A PKCS#10 request that is malformed, badly signed, or does not fit its purpose */
export class BadCsrError extends PkiError {
  static readonly code = 'ERR_BAD_CSR'
  constructor (message = 'bad certificate signing request') {
    super(message, BadCsrError.code)
  }
}
