// What the routes of every domain share: the route types, addresses and certificates as
// the control API answers them.
import { X509Certificate } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseBootstrapAddress } from '../../config.ts'
import { BadRequestError } from '../../errors.ts'
import type { IssuedCertificate } from '../../agency/agency.ts'
import type { AnswerOf, CallName, DeviceCertificateSummary, IssuedCertificateJson, ProgressOf, RequestOf } from '../api.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** A call's route: gets the validated request; `progress` reaches a client that asked for a streamed answer */
export type Handler<N extends CallName> = (request: RequestOf<N>, signal: AbortSignal, progress: (event: ProgressOf<N>) => void) => Promise<AnswerOf<N>>

/** The routes of some of the calls */
export type Routes<K extends CallName> = { [N in K]: Handler<N> }

/** `keyfair escrow crl refresh` and a device's revocation check wait this long for the agency */
export const CRL_REFRESH_TIMEOUT_MS = 10_000

export function parseAgencyAddress (value: string): PeerId | Multiaddr {
  try {
    if (value.startsWith('/')) return parseBootstrapAddress(value)
    return peerIdFromString(value)
  } catch (err: any) {
    throw new BadRequestError(`agency '${value}' is neither a peer id nor a /…/p2p/<peer id> multiaddr`, { cause: err })
  }
}

export function describeCertificates (signing: string, encryption: string): DeviceCertificateSummary {
  const describe = (pem: string): { serial: string, notAfter: string } => {
    const cert = new X509Certificate(pem)
    return { serial: cert.serialNumber.toLowerCase(), notAfter: new Date(cert.validTo).toISOString() }
  }
  return { signingCertificate: describe(signing), encryptionCertificate: describe(encryption) }
}

export function certificateJson (cert: IssuedCertificate): IssuedCertificateJson {
  return {
    serial: cert.serial,
    purpose: cert.purpose,
    subject: cert.subject,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    issuedAt: cert.issuedAt.toISOString(),
    ...(cert.revokedAt == null ? {} : { revokedAt: cert.revokedAt.toISOString(), reason: cert.reason }),
    pem: cert.pem
  }
}
