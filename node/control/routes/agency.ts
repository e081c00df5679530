// The agency's calls: enrollment codes, certificates, revocation and its list.
import { AgencyRole } from '../../roles/agency.ts'
import { certificateJson } from './shared.ts'
import type { Routes } from './shared.ts'
import type { KeyfairNode } from '../../keyfair-node.ts'

type AgencyCall = 'agency.enrollCode' | 'agency.issue' | 'agency.revoke' | 'agency.crl' | 'agency.certs'

export function agencyRoutes (node: KeyfairNode): Routes<AgencyCall> {
  return {
    'agency.enrollCode': async ({ kind, ttlMs }) => {
      const code = node.role(AgencyRole).agency.createEnrollmentCode({ kind, ttlMs: ttlMs ?? 15 * 60_000 })
      return { code: code.code, kind: code.kind, expiresAt: code.expiresAt.toISOString() }
    },
    'agency.issue': async ({ csr, purpose, validityDays }) => certificateJson(node.role(AgencyRole).agency.issue(csr, purpose, { validityDays })),
    'agency.revoke': async ({ target, reason }) => {
      const result = node.role(AgencyRole).agency.revoke(target, reason)
      return { revoked: result.revoked.map(certificateJson), alreadyRevoked: result.alreadyRevoked, crlNumber: result.crlNumber }
    },
    'agency.crl': async () => {
      const crl = node.role(AgencyRole).agency.crlState()
      return {
        number: crl.number,
        thisUpdate: crl.thisUpdate.toISOString(),
        nextUpdate: crl.nextUpdate.toISOString(),
        revoked: crl.revoked,
        crl: Buffer.from(crl.der).toString('base64')
      }
    },
    'agency.certs': async () => ({
      certificates: node.role(AgencyRole).agency.certificates().map(c => {
        const { pem, ...rest } = certificateJson(c)
        return rest
      })
    })
  }
}
