// Every control call's request: its type, and the validator that turns a JSON body into it or
// refuses it with a BadRequestError naming the field. Checks that need the running node (an
// amount in its escrow's currency, a content it holds) stay in the routes.
import { BadRequestError } from '../errors.ts'
import { MAX_FIND_LIMIT, MAX_FIND_TIMEOUT_MS } from '../discovery/discovery.ts'
import { MAX_CODE_TTL_MS } from '../agency/agency.ts'
import { isCertificatePurpose } from '../../device/pki/index.ts'
import type { CertificatePurpose } from '../../device/pki/index.ts'
import { LIMITS } from '../../device/objects/market.ts'
import { ENTRY_KINDS } from '../escrow/ledger-store.ts'
import type { EntryKind, HoldState } from '../escrow/ledger-store.ts'
import { LOG_LEVELS, isLogLevel } from '../log/levels.ts'
import { MIN_INFLIGHT_BYTES } from '../config.ts'
import type { LogLevel } from '../log/levels.ts'
import {
  defined, fields, isCidString, isPeerIdString, optionalBoolean, optionalInt, optionalString, requireString, requiredInt, stringList
} from './contract.ts'

const AGENCY_ADDRESS = 'agency must be a peer id or a multiaddr ending in /p2p/<peer id>'
const AGENCY_MULTIADDR = 'agency must be a multiaddr ending in /p2p/<peer id>'

export interface AnnounceRequest { contentId: string, keywords: string[] }
export function validateAnnounce (body: unknown): AnnounceRequest {
  const { contentId, keywords } = fields(body)
  return { contentId: requireString(contentId, 'contentId must be a string'), keywords: stringList(keywords, 'keywords must be a list of strings') }
}

export interface FindRequest { keyword: string, limit?: number, timeoutMs?: number }
export function validateFind (body: unknown): FindRequest {
  const { keyword, limit, timeoutMs } = fields(body)
  return defined({
    keyword: requireString(keyword, 'keyword must be a string'),
    limit: optionalInt(limit, 'limit', 1, MAX_FIND_LIMIT),
    timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS)
  })
}

export interface ProvidersRequest { content: string, timeoutMs?: number }
export function validateProviders (body: unknown): ProvidersRequest {
  const { content, timeoutMs } = fields(body)
  if (typeof content !== 'string' || !isCidString(content)) throw new BadRequestError('content must be a CID')
  return defined({ content, timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS) })
}

export interface LogLevelRequest { level?: LogLevel }
export function validateLogLevel (body: unknown): LogLevelRequest {
  const { level } = fields(body)
  if (level == null) return {}
  if (!isLogLevel(level)) throw new BadRequestError(`level must be one of ${LOG_LEVELS.join(', ')}`)
  return { level }
}

export interface EnrollCodeRequest { kind: 'device' | 'escrow', ttlMs?: number }
export function validateEnrollCode (body: unknown): EnrollCodeRequest {
  const { kind, ttlMs } = fields(body)
  if (kind !== 'device' && kind !== 'escrow') throw new BadRequestError("kind must be 'device' or 'escrow'")
  return defined({ kind, ttlMs: optionalInt(ttlMs, 'ttlMs', 1, MAX_CODE_TTL_MS) })
}

export interface IssueRequest { csr: string, purpose: CertificatePurpose, validityDays?: number }
export function validateIssue (body: unknown): IssueRequest {
  const { csr, purpose, validityDays } = fields(body)
  const pem = requireString(csr, 'csr must be a PEM string')
  if (!isCertificatePurpose(purpose)) throw new BadRequestError('purpose must be device-signing, device-encryption or escrow')
  return defined({ csr: pem, purpose, validityDays: optionalInt(validityDays, 'validityDays', 1, 3650) })
}

export interface RevokeRequest { target: string, reason?: string }
export function validateRevoke (body: unknown): RevokeRequest {
  const { target, reason } = fields(body)
  return defined({
    target: requireString(target, 'target must be a serial, device id or peer id'),
    reason: optionalString(reason, 'reason must be a string')
  })
}

export interface PassphraseRequest { passphrase: string }
export interface DeviceInitRequest extends PassphraseRequest { bits?: number }
export function validateDeviceInit (body: unknown): DeviceInitRequest {
  const { passphrase, bits } = fields(body)
  return defined({ passphrase: requireString(passphrase, 'passphrase must be a string'), bits: optionalInt(bits, 'bits', 2048, 8192) })
}
export function validateUnlock (body: unknown): PassphraseRequest {
  return { passphrase: requireString(fields(body).passphrase, 'passphrase must be a string') }
}

export interface EnrollRequest { agency: string, code: string }
export function validateDeviceEnroll (body: unknown): EnrollRequest {
  const { agency, code } = fields(body)
  return { agency: requireString(agency, AGENCY_ADDRESS), code: requireString(code, 'code must be a string') }
}
export function validateEscrowEnroll (body: unknown): EnrollRequest {
  const { agency, code } = fields(body)
  return { agency: multiaddrString(agency), code: requireString(code, 'code must be a string') }
}

/** An amount in minor units, or a decimal string of the escrow's major units ("12.50") */
export interface MoneyRequest { account: string, amount: number | string, memo?: string }
export function validateMoney (body: unknown): MoneyRequest {
  const { account, amount, memo } = fields(body)
  if (typeof account !== 'string') throw new BadRequestError('account must be a peer id')
  if (!isPeerIdString(account)) throw new BadRequestError(`account '${account}' is not a peer id`)
  if (typeof amount !== 'string') checkAmount(amount)
  if (memo != null && (typeof memo !== 'string' || memo.length > 200)) throw new BadRequestError('memo must be a string of at most 200 characters')
  return defined({ account, amount: amount as number | string, memo: memo ?? undefined })
}

/** A whole, positive number of minor units */
export function checkAmount (amount: unknown): number {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) {
    throw new BadRequestError('amount must be a whole number of minor units above 0, or a decimal of major units')
  }
  return amount
}

export interface LedgerRequest { account?: string, kind?: EntryKind, since?: number, limit?: number }
export function validateLedger (body: unknown): LedgerRequest {
  const { account, kind, since, limit } = fields(body)
  if (kind != null && !ENTRY_KINDS.includes(kind as EntryKind)) throw new BadRequestError(`kind must be one of ${ENTRY_KINDS.join(', ')}`)
  return defined({
    account: optionalString(account, 'account must be a string'),
    kind: (kind ?? undefined) as EntryKind | undefined,
    since: optionalInt(since, 'since', 0, Number.MAX_SAFE_INTEGER),
    limit: optionalInt(limit, 'limit', 1, 10_000)
  })
}

export interface HoldsRequest { state?: HoldState, buyer?: string, limit?: number }
export function validateHolds (body: unknown): HoldsRequest {
  const { state, buyer, limit } = fields(body)
  if (state != null && state !== 'open' && state !== 'released' && state !== 'refunded') throw new BadRequestError('state must be open, released or refunded')
  return defined({
    state: state ?? undefined,
    buyer: optionalString(buyer, 'buyer must be a peer id'),
    limit: optionalInt(limit, 'limit', 1, 10_000)
  })
}

export interface BalanceRequest { escrow: string }
export function validateBalance (body: unknown): BalanceRequest {
  return { escrow: requireString(fields(body).escrow, 'escrow must be a peer id or a multiaddr ending in /p2p/<peer id>') }
}

export interface TrustRequest { agency: string }
export function validateTrust (body: unknown): TrustRequest {
  return { agency: multiaddrString(fields(body).agency) }
}

function multiaddrString (value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/')) throw new BadRequestError(AGENCY_MULTIADDR)
  return value
}

export interface PublishRequest {
  file: string
  title: string
  tags: string[]
  /** minor units of `currency`, paid to each of the t escrows */
  price: number
  currency?: string
  t: number
  n: number
  escrows: string[]
  validDays?: number
  chunkSize?: number
  open?: boolean
  licenceTtlMs?: number
}
export function validatePublish (body: unknown): PublishRequest {
  const { file, title, tags, price, currency, t, n, escrows, validDays, chunkSize, open, licenceTtlMs } = fields(body)
  const path = requireString(file, 'file must be a path')
  if (typeof title !== 'string' || title.trim() === '' || title.length > 256) throw new BadRequestError('title must be 1..256 characters')
  if (!Array.isArray(tags) || tags.length > 32) throw new BadRequestError('tags must be at most 32 strings')
  const tagList = stringList(tags, 'tags must be at most 32 strings', x => x.length <= 64)
  const escrowList = stringList(escrows, 'escrows must be a list of peer ids or multiaddrs')
  return defined({
    file: path,
    title,
    tags: tagList,
    price: requiredInt(price, 'price', 0, Number.MAX_SAFE_INTEGER),
    currency: optionalString(currency, 'currency must be a string'),
    t: requiredInt(t, 't', 1, 64),
    n: requiredInt(n, 'n', 1, 64),
    escrows: escrowList,
    validDays: optionalInt(validDays, 'validDays', 1, 3650),
    open: optionalBoolean(open, 'open'),
    licenceTtlMs: optionalInt(licenceTtlMs, 'licenceTtlMs', LIMITS.minLicenceTtlMs, LIMITS.maxLicenceTtlMs),
    chunkSize: optionalInt(chunkSize, 'chunkSize', 1024, 16 * 1024 * 1024)
  })
}

export interface SearchRequest { words: string[], timeoutMs?: number }
export function validateSearch (body: unknown): SearchRequest {
  const { words, timeoutMs } = fields(body)
  if (!Array.isArray(words) || words.length === 0) throw new BadRequestError('words must be a non-empty list of strings')
  return defined({
    words: stringList(words, 'words must be a non-empty list of strings'),
    timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS)
  })
}

export interface OfferRequest { offer: string }
export function validateQuote (body: unknown): OfferRequest {
  return { offer: requireString(fields(body).offer, 'offer must be an offer id') }
}

export interface BuyRequest { offer: string, output?: string, seed?: boolean, from?: string[], inflightBytes?: number }
export function validateBuy (body: unknown): BuyRequest {
  const { offer, output, seed, from, inflightBytes } = fields(body)
  const id = requireString(offer, 'offer must be an offer id')
  const path = optionalString(output, 'output must be a path')
  if (from != null && (!Array.isArray(from) || from.length > 64 || !from.every(isPeerIdString))) throw new BadRequestError('from must be a list of at most 64 peer ids')
  if (inflightBytes != null && (typeof inflightBytes !== 'number' || !Number.isSafeInteger(inflightBytes) || inflightBytes < MIN_INFLIGHT_BYTES)) throw new BadRequestError(`inflightBytes must be a whole number of at least ${MIN_INFLIGHT_BYTES}`)
  return defined({ offer: id, output: path, seed: seed === true, from: (from ?? undefined) as string[] | undefined, inflightBytes: (inflightBytes ?? undefined) as number | undefined })
}

export interface PlayRequest { content: string, output: string }
export function validatePlay (body: unknown): PlayRequest {
  const { content, output } = fields(body)
  if (typeof content !== 'string' || typeof output !== 'string') throw new BadRequestError('content (a content id) and output (a path) are needed')
  return { content, output }
}

export interface ContentRequest { content: string }
export function validateRenew (body: unknown): ContentRequest {
  const { content } = fields(body)
  if (typeof content !== 'string' || content.length > 200) throw new BadRequestError('content must be a content id')
  return { content }
}
export function validateRemove (body: unknown): ContentRequest {
  const { content } = fields(body)
  if (typeof content !== 'string' || !isCidString(content)) throw new BadRequestError('content must be a content id')
  return { content }
}

export interface PurchaseRequest { purchase: string, chunk?: number }
export function validateConfirm (body: unknown): PurchaseRequest {
  return { purchase: requireString(fields(body).purchase, 'purchase must be a purchase id') }
}
export function validateDispute (body: unknown): PurchaseRequest {
  const { purchase, chunk } = fields(body)
  return defined({ purchase: requireString(purchase, 'purchase must be a purchase id'), chunk: optionalInt(chunk, 'chunk', 0, 2 ** 32 - 1) })
}

export interface ExportRequest { content: string, path: string }
export function validateExport (body: unknown): ExportRequest {
  const { content, path } = fields(body)
  if (typeof content !== 'string' || typeof path !== 'string') throw new BadRequestError('content (a content id) and path (a new directory) are needed')
  return { content, path }
}

export interface ImportRequest { path: string, seed?: boolean }
export function validateImport (body: unknown): ImportRequest {
  const { path, seed } = fields(body)
  return { path: requireString(path, 'path must be a directory written by keyfair export'), seed: seed === true }
}
