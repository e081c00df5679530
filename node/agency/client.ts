// What other nodes use to talk to an agency: enroll with a one-time code, and
// fetch the revocation list, verified against the root before it is used.
import { BadCertificateError, CertificateUntrustedError, TrustStore, inspectCsr } from '../../device/pki/index.ts'
import { requestCrl } from '../../protocols/agency/crl.ts'
import { requestEnrollment } from '../../protocols/agency/enroll.ts'
import type { CertificatePurpose, CrlInfo } from '../../device/pki/index.ts'
import type { CertificateSlot, PemSet } from '../../protocols/agency/enroll.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { StreamOpener } from '../../protocols/toolkit/service.ts'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface AgencyClientComponents {
  connectionManager: StreamOpener
}

export type AgencyAddress = PeerId | Multiaddr | Multiaddr[]

export interface EnrollOptions extends AbortOptions {
  /** The root this node already trusts; the agency's answer must carry exactly it. */
  rootPem?: string
}

export interface Enrollment {
  root: string
  certificates: PemSet
}

const PURPOSE_OF_SLOT: Record<CertificateSlot, CertificatePurpose> = {
  signing: 'device-signing',
  encryption: 'device-encryption',
  escrow: 'escrow'
}

/**
 * Enrolls with an agency: sends the code and CSRs, then checks the answer
 * before returning it: one certificate per CSR, each issued by the returned
 * root (or `options.rootPem`), for its purpose, and carrying the CSR's key.
 * Refusals keep the agency's code (ERR_ENROLL_CODE_USED, ERR_BAD_CSR, …).
 */
export async function enrollWithAgency (
  components: AgencyClientComponents,
  agency: AgencyAddress,
  request: { code: string, csrs: PemSet },
  options: EnrollOptions = {}
): Promise<Enrollment> {
  const answer = await requestEnrollment(components, agency, request, options)
  // no CRL yet at enrollment: the chain, purpose and key are what can be checked
  const trust = new TrustStore(answer.root, { requireCrl: false })
  if (options.rootPem != null && new TrustStore(options.rootPem).root.fingerprint256 !== trust.root.fingerprint256) {
    throw new CertificateUntrustedError('the agency answered with another root than the one trusted')
  }
  for (const [slot, csr] of Object.entries(request.csrs) as Array<[CertificateSlot, string | undefined]>) {
    if (csr == null) continue
    const pem = answer.certificates[slot]
    if (pem == null) throw new BadCertificateError(`the agency issued no ${slot} certificate`)
    const verified = trust.verify(pem, { purpose: PURPOSE_OF_SLOT[slot] })
    if (!verified.publicKey.equals(inspectCsr(csr).publicKey)) {
      throw new BadCertificateError(`the ${slot} certificate does not carry the key of its CSR`)
    }
  }
  return { root: answer.root, certificates: answer.certificates }
}

/**
 * Fetches the agency's CRL and installs it in `trust` (which checks it against
 * the root and keeps only a newer list). Returns the list in force.
 */
export async function fetchCrl (
  components: AgencyClientComponents,
  agency: AgencyAddress,
  trust: TrustStore,
  options: AbortOptions = {}
): Promise<CrlInfo> {
  const der = await requestCrl(components, agency, options)
  return trust.setCrl(der)
}
