// The control API's contract: every call's request (validated on the server before its route
// runs), answer and progress events. The server, the client, the CLI and any other front end
// take a call's shape from here and nowhere else.
import { call, empty } from './contract.ts'
import type { Call, Empty } from './contract.ts'
import * as req from './requests.ts'
import type { BuyProgress, PlayProgress, PublishProgress } from './progress.ts'
import type { AnnounceResult, Provider } from '../discovery/discovery.ts'
import type { NodeStatus, PeerInfo } from '../keyfair-node.ts'
import type { CertificatePurpose } from '../../device/pki/index.ts'
import type { DeviceCertificates, DeviceStatus, LicenceInfo, PurchaseInfo } from '../../device/interface.ts'
import type { AuditReport, HoldRecord, Posting } from '../escrow/ledger-store.ts'
import type { AccountAnswer } from '../../protocols/escrow/account.ts'
import type { BuyResult, OfferListing, Quote, SettlementResult } from '../buyer/types.ts'
import type { RenewalResult } from '../buyer/renewal.ts'
import type { ContentSummary } from '../content/store.ts'
import type { Published } from '../seller/seller.ts'
import type { Exported, Imported } from '../market/media.ts'
import type { LogLevel } from '../log/levels.ts'

export type * from './requests.ts'
export type { Empty } from './contract.ts'

export interface Identity { peerId: string, addresses: string[] }
export interface Found { keyword: string, cid: string, providers: Provider[] }
export interface ProvidersFound { content: string, providers: Provider[] }

/** A certificate the agency issued, as JSON */
export interface CertificateJson {
  serial: string
  purpose: CertificatePurpose
  subject: string
  notBefore: string
  notAfter: string
  issuedAt: string
  revokedAt?: string
  reason?: string
}
export interface IssuedCertificateJson extends CertificateJson { pem: string }
export interface EnrollmentCode { code: string, kind: 'device' | 'escrow', expiresAt: string }
export interface Revoked { revoked: IssuedCertificateJson[], alreadyRevoked: string[], crlNumber: number }
export interface AgencyCrl { number: number, thisUpdate: string, nextUpdate: string, revoked: number, crl: string }

export interface CertificateValidity { serial: string, notAfter: string }
export interface DeviceCertificateSummary {
  signingCertificate: CertificateValidity
  encryptionCertificate: CertificateValidity
}
export interface DeviceEnrolled extends DeviceCertificateSummary { deviceId: string, root: string }

/** Revocation of this node's device, as its own agency's newest CRL says */
export interface DeviceRevocation {
  state: 'revoked' | 'valid' | 'unknown'
  why?: string
  reason?: string
  revokedAt?: string
  serials?: string[]
  crl?: { number: string, thisUpdate: string, nextUpdate: string, ageMs: number, heardAt: string | null }
}

export interface EscrowEnrolled { peerId: string, serial: string, notAfter: string }
export interface EscrowInfo {
  peerId: string
  bits: number
  currency: string
  holdTtlMs: number
  unblindWorkers: number
  crl: string | null
  crlHeardAt: string | null
}
export interface EscrowCrl { number: string, thisUpdate: string, nextUpdate: string, revoked: number }
/** Every amount of an escrow's answer is in minor units of `currency` */
export interface InCurrency { currency: string }
export interface AccountBalance extends InCurrency { account: string, balance: number }
export type HoldSummary = Omit<HoldRecord, 'answer' | 'requestBytes'>

export const api = {
  id: call<Empty, Identity>(empty),
  peers: call<Empty, { peers: PeerInfo[] }>(empty),
  status: call<Empty, NodeStatus>(empty),
  announce: call<req.AnnounceRequest, AnnounceResult>(req.validateAnnounce),
  find: call<req.FindRequest, Found>(req.validateFind),
  providers: call<req.ProvidersRequest, ProvidersFound>(req.validateProviders),
  stop: call<Empty, { stopping: true }>(empty),
  'log.level': call<req.LogLevelRequest, { level: LogLevel, file: string }>(req.validateLogLevel),
  /** a one-time web UI login address (served by the control server itself) */
  'ui.login': call<Empty, { url: string, expiresAt: string }>(empty),

  'agency.enrollCode': call<req.EnrollCodeRequest, EnrollmentCode>(req.validateEnrollCode),
  'agency.issue': call<req.IssueRequest, IssuedCertificateJson>(req.validateIssue),
  'agency.revoke': call<req.RevokeRequest, Revoked>(req.validateRevoke),
  'agency.crl': call<Empty, AgencyCrl>(empty),
  'agency.certs': call<Empty, { certificates: CertificateJson[] }>(empty),

  'device.status': call<Empty, DeviceStatus & { revocation?: DeviceRevocation }>(empty),
  'device.init': call<req.DeviceInitRequest, { deviceId: string }>(req.validateDeviceInit),
  'device.unlock': call<req.PassphraseRequest, { deviceId: string }>(req.validateUnlock),
  'device.lock': call<Empty, { locked: true }>(empty),
  'device.enroll': call<req.EnrollRequest, DeviceEnrolled>(req.validateDeviceEnroll),
  'device.certificates': call<Empty, DeviceCertificates & DeviceCertificateSummary>(empty),

  'escrow.enroll': call<req.EnrollRequest, EscrowEnrolled>(req.validateEscrowEnroll),
  'escrow.info': call<Empty, EscrowInfo>(empty),
  'escrow.crlRefresh': call<Empty, EscrowCrl>(empty),
  'escrow.deposit': call<req.MoneyRequest, AccountBalance>(req.validateMoney),
  'escrow.withdraw': call<req.MoneyRequest, AccountBalance>(req.validateMoney),
  'escrow.ledger': call<req.LedgerRequest, InCurrency & { postings: Posting[] }>(req.validateLedger),
  'escrow.holds': call<req.HoldsRequest, InCurrency & { holds: HoldSummary[] }>(req.validateHolds),
  'escrow.audit': call<Empty, InCurrency & AuditReport>(empty),
  'escrow.accounts': call<Empty, InCurrency & { accounts: Array<{ account: string, balance: number }>, openHolds: number }>(empty),
  balance: call<req.BalanceRequest, AccountAnswer>(req.validateBalance),
  trust: call<req.TrustRequest, { agency: string, root: string }>(req.validateTrust),

  publish: call<req.PublishRequest, Published, PublishProgress>(req.validatePublish),
  search: call<req.SearchRequest, { offers: OfferListing[] }>(req.validateSearch),
  quote: call<req.OfferRequest, Quote>(req.validateQuote),
  buy: call<req.BuyRequest, BuyResult, BuyProgress>(req.validateBuy),
  play: call<req.PlayRequest, { bytes: number }, PlayProgress>(req.validatePlay),
  library: call<Empty, { licences: LicenceInfo[] }>(empty),
  renew: call<req.ContentRequest, RenewalResult>(req.validateRenew),
  purchases: call<Empty, { purchases: PurchaseInfo[] }>(empty),
  confirm: call<req.PurchaseRequest, SettlementResult>(req.validateConfirm),
  dispute: call<req.PurchaseRequest, SettlementResult>(req.validateDispute),
  contents: call<Empty, { contents: ContentSummary[] }>(empty),
  remove: call<req.ContentRequest, { content: string, removed: true }>(req.validateRemove),
  export: call<req.ExportRequest, Exported>(req.validateExport),
  import: call<req.ImportRequest, Imported>(req.validateImport)
} as const

export type Api = typeof api
export type CallName = keyof Api
export type RequestOf<N extends CallName> = Api[N] extends Call<infer Q, unknown, unknown> ? Q : never
export type AnswerOf<N extends CallName> = Api[N] extends Call<unknown, infer A, unknown> ? A : never
export type ProgressOf<N extends CallName> = Api[N] extends Call<unknown, unknown, infer P> ? P : never
/** The calls that stream progress events before their answer */
export type StreamName = { [N in CallName]: [ProgressOf<N>] extends [never] ? never : N }[CallName]

export function isCallName (name: string): name is CallName {
  return Object.hasOwn(api, name)
}
