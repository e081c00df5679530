// A throwaway agency for tests that need certified devices without running the
// agency role: the same X.509 code the agency uses, a 2048-bit root.
import { generateKeyPairSync } from 'node:crypto'
import { TrustStore, inspectCsr } from '../../device/pki/index.ts'
import { certificateSubject, decodePem } from '../../device/pki/der.ts'
import { buildCrl, createRootCertificate, issueCertificate, keyIdentifierOf } from '../../node/agency/x509.ts'
import type { DeviceCertificates } from '../../device/interface.ts'
import type { Issuer } from '../../node/agency/x509.ts'

export interface TestAgency {
  rootPem: string
  issuer: Issuer
  issueDevice: (csrs: { signing: string, encryption: string }) => DeviceCertificates
  /** a trust store holding a fresh CRL that revokes `revoked` serials */
  trust: (revoked?: string[]) => TrustStore
}

export function createTestAgency (): TestAgency {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const now = Date.now()
  const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) }
  const rootPem = createRootCertificate(privateKey, publicKey, { commonName: 'keyfair test agency' }, validity)
  const issuer: Issuer = { privateKey, subject: certificateSubject(decodePem(rootPem, 'CERTIFICATE')!), keyIdentifier: keyIdentifierOf(publicKey) }
  return {
    rootPem,
    issuer,
    issueDevice (csrs) {
      const signing = inspectCsr(csrs.signing)
      const encryption = inspectCsr(csrs.encryption)
      const names = { commonName: signing.commonName, organizationalUnit: signing.organizationalUnit }
      return {
        signing: issueCertificate(issuer, signing.publicKey, names, 'device-signing', validity),
        encryption: issueCertificate(issuer, encryption.publicKey, names, 'device-encryption', validity),
        root: rootPem
      }
    },
    trust (revoked = []) {
      const store = new TrustStore(rootPem)
      store.setCrl(buildCrl(issuer, {
        number: 1,
        thisUpdate: new Date(Date.now() - 1000),
        nextUpdate: new Date(Date.now() + 3_600_000),
        revoked: revoked.map(serial => ({ serial, revokedAt: new Date(), reason: 'keyCompromise' }))
      }))
      return store
    }
  }
}
