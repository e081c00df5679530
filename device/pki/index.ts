// X.509 for keyfair (docs/protocol.md, Certificates): CSRs, naming, and the one
// certificate + CRL verification that escrows and buyers share. No network.
export * from './errors.ts'
export * from './names.ts'
export { createCsr, inspectCsr, MAX_CSR_PEM_LENGTH } from './csr.ts'
export type { CsrInfo, CsrSubject } from './csr.ts'
export { TrustStore, parseCrl, CRL_REASONS, MAX_CRL_BYTES } from './verify.ts'
export type { CrlInfo, ParsedCrl, RevokedEntry, TrustStoreOptions, VerifiedCertificate, VerifyOptions } from './verify.ts'
export { decodePem, encodePem } from './der.ts'
