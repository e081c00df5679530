// The agency's calls: enrollment codes, certificates, revocation and its list.
import { agencyOf, certificateJson } from './shared.ts'
import type { Routes } from './shared.ts'
import type { KeyfairNode } from '../../keyfair-node.ts'

type AgencyCall = 'agency.enrollCode' | 'agency.issue' | 'agency.revoke' | 'agency.crl' | 'agency.certs'

export function agencyRoutes (node: KeyfairNode): Routes<AgencyCall> {
  return {
    'agency.enrollCode': async ({ kind, ttlMs }) => {
      const code = agencyOf(node).createEnrollmentCode({ kind, ttlMs: ttlMs ?? 15 * 60_000 })
      return { code: code.code, kind: code.kind, expiresAt: code.expiresAt.toISOString() }
    },
    'agency.issue': async ({ csr, purpose, validityDays }) => certificateJson(agencyOf(node).issue(csr, purpose, { validityDays })),
    'agency.revoke': async ({ target, reason }) => {
      const result = agencyOf(node).revoke(target, reason)
      return { revoked: result.revoked.map(certificateJson), alreadyRevoked: result.alreadyRevoked, crlNumber: result.crlNumber }
    },
    'agency.crl': async () => {
      const crl = agencyOf(node).crlState()
      return {
        number: crl.number,
        thisUpdate: crl.thisUpdate.toISOString(),
        nextUpdate: crl.nextUpdate.toISOString(),
        revoked: crl.revoked,
        crl: Buffer.from(crl.der).toString('base64')
      }
    },
    'agency.certs': async () => ({
      certificates: agencyOf(node).certificates().map(c => {
        const { pem, ...rest } = certificateJson(c)
        return rest
      })
    })
  }
}
