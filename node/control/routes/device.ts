// The sealed device's calls: its key store, its enrollment with an agency, its revocation.
import { X509Certificate } from 'node:crypto'
import { enrollWithAgency } from '../../agency/client.ts'
import { timeoutSignal } from '../../../protocols/toolkit/index.ts'
import { BadRequestError } from '../../errors.ts'
import { CRL_REFRESH_TIMEOUT_MS, describeCertificates, parseAgencyAddress } from './shared.ts'
import type { Routes } from './shared.ts'
import type { DeviceRevocation } from '../api.ts'
import type { KeyfairNode } from '../../keyfair-node.ts'

type DeviceCall = 'device.status' | 'device.init' | 'device.unlock' | 'device.lock' | 'device.enroll' | 'device.certificates'

export function deviceRoutes (node: KeyfairNode): Routes<DeviceCall> {
  return {
    'device.status': async (_request, signal) => {
      const status = await node.device.status()
      return status.enrolled ? { ...status, revocation: await deviceRevocation(node, signal) } : status
    },
    'device.init': async ({ passphrase, bits }) => node.device.initialise({ passphrase, bits }),
    'device.unlock': async ({ passphrase }) => node.device.unlock({ passphrase }),
    'device.lock': async () => {
      await node.device.lock()
      return { locked: true }
    },
    'device.enroll': async ({ agency, code }, signal) => {
      const csrs = await node.device.certificateRequests()
      const enrolled = await enrollWithAgency({ connectionManager: node.streams }, parseAgencyAddress(agency), {
        code,
        csrs: { signing: csrs.signing, encryption: csrs.encryption }
      }, { signal })
      const { signing, encryption } = enrolled.certificates
      if (signing == null || encryption == null) throw new BadRequestError('the agency did not issue both device certificates')
      await node.device.installCertificates({ signing, encryption, root: enrolled.root })
      // the agency that certified this device is the one this node trusts
      if (agency.startsWith('/')) await node.market.trust.set(agency, enrolled.root, { signal })
      return { deviceId: csrs.deviceId, root: enrolled.root, ...describeCertificates(signing, encryption) }
    },
    'device.certificates': async () => {
      const certs = await node.device.certificates()
      return { ...certs, ...describeCertificates(certs.signing, certs.encryption) }
    }
  }
}

/** Revocation, as the device's own agency sees it: this node's newest CRL against the device's public certificates */
async function deviceRevocation (node: KeyfairNode, signal: AbortSignal): Promise<DeviceRevocation> {
  const certs = await node.device.certificates()
  const trusted = await node.market.trust.root()
  if (trusted == null || new X509Certificate(trusted).fingerprint256 !== new X509Certificate(certs.root).fingerprint256) {
    return { state: 'unknown', why: 'this node does not trust the agency that certified the device (keyfair trust --agency <multiaddr>)' }
  }
  const state = await node.market.trust.revocationOf([certs.signing, certs.encryption], { signal: timeoutSignal(CRL_REFRESH_TIMEOUT_MS, signal) })
  if (state == null) return { state: 'unknown', why: 'no revocation list from the agency yet' }
  const now = Date.now()
  return {
    state: state.revoked ? 'revoked' : 'valid',
    ...(state.revoked ? { reason: state.reason ?? 'unspecified', revokedAt: state.revokedAt?.toISOString(), serials: state.serials } : {}),
    crl: {
      number: state.crl.number.toString(),
      thisUpdate: state.crl.thisUpdate.toISOString(),
      nextUpdate: state.crl.nextUpdate.toISOString(),
      ageMs: now - state.crl.thisUpdate.getTime(),
      heardAt: state.crl.heardAt?.toISOString() ?? null
    }
  }
}
