// The escrow operator's calls (enrollment, deposits and withdrawals, ledger, audit), and a
// node's own account at an escrow.
import { X509Certificate } from 'node:crypto'
import { requestAccount } from '../../../protocols/escrow/account.ts'
import { timeoutSignal } from '../../../protocols/toolkit/index.ts'
import { parseMoney } from '../../format.ts'
import { checkAmount } from '../requests.ts'
import { EscrowRole } from '../../roles/escrow.ts'
import { CRL_REFRESH_TIMEOUT_MS, parseAgencyAddress } from './shared.ts'
import type { Routes } from './shared.ts'
import type { MoneyRequest } from '../api.ts'
import type { KeyfairNode } from '../../keyfair-node.ts'

type EscrowCall = 'escrow.enroll' | 'escrow.info' | 'escrow.crlRefresh' | 'escrow.deposit' | 'escrow.withdraw' |
'escrow.ledger' | 'escrow.holds' | 'escrow.audit' | 'escrow.accounts' | 'balance'

export function escrowRoutes (node: KeyfairNode): Routes<EscrowCall> {
  /** The currency the escrow settles: every amount of its ledger is in its minor units */
  const currency = (): string => node.role(EscrowRole).escrow.currency
  return {
    'escrow.enroll': async ({ agency, code }, signal) => {
      parseAgencyAddress(agency)
      const { certificate, root } = await node.role(EscrowRole).enroll(agency, code, { signal })
      await node.market.trust.set(agency, root, { signal })
      const cert = new X509Certificate(certificate)
      return { peerId: node.status().peerId, serial: cert.serialNumber.toLowerCase(), notAfter: new Date(cert.validTo).toISOString() }
    },
    'escrow.info': async () => {
      const role = node.role(EscrowRole)
      const info = role.escrow.info()
      return {
        peerId: info.peer,
        bits: info.n.length * 8,
        currency: info.currency,
        holdTtlMs: info.holdTtlMs,
        unblindWorkers: role.unblindWorkers,
        crl: role.escrow.trust?.crl?.number?.toString() ?? null,
        crlHeardAt: role.crlHeardAt?.toISOString() ?? null
      }
    },
    'escrow.crlRefresh': async (_request, signal) => {
      const crl = await node.role(EscrowRole).refreshCrl({ signal: timeoutSignal(CRL_REFRESH_TIMEOUT_MS, signal) })
      return { number: crl.number.toString(), thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate.toISOString(), revoked: crl.revoked.size }
    },
    'escrow.deposit': async request => {
      const { account, amount, memo } = minorUnits(request, currency())
      return { account, balance: await node.role(EscrowRole).ledger.deposit(account, amount, memo), currency: currency() }
    },
    'escrow.withdraw': async request => {
      const { account, amount, memo } = minorUnits(request, currency())
      return { account, balance: await node.role(EscrowRole).ledger.withdraw(account, amount, memo), currency: currency() }
    },
    'escrow.ledger': async ({ account, kind, since, limit }) => ({
      postings: await node.role(EscrowRole).ledger.postings({ account, kind, since, limit }),
      currency: currency()
    }),
    'escrow.holds': async ({ state, buyer, limit }) => {
      const holds = await node.role(EscrowRole).ledger.holds({ state, buyer, limit })
      return { holds: holds.map(({ answer, requestBytes, ...rest }) => rest), currency: currency() }
    },
    'escrow.audit': async () => ({ ...(await node.role(EscrowRole).ledger.audit()), currency: currency() }),
    'escrow.accounts': async () => ({
      accounts: await node.role(EscrowRole).ledger.accounts(),
      openHolds: (await node.role(EscrowRole).ledger.holds({ state: 'open', limit: 10_000 })).length,
      currency: currency()
    }),
    balance: async ({ escrow }, signal) => requestAccount({ connectionManager: node.streams }, parseAgencyAddress(escrow), { signal })
  }
}

/** The request's amount in minor units: a decimal string is read in the escrow's currency */
function minorUnits (request: MoneyRequest, currency: string): { account: string, amount: number, memo?: string } {
  const amount = checkAmount(typeof request.amount === 'string' ? parseMoney(request.amount, currency) : request.amount)
  return request.memo == null ? { account: request.account, amount } : { account: request.account, amount, memo: request.memo }
}
