import { X509Certificate } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { keywordCid, keywordsOf } from '../discovery/keywords.ts'
import { exportContent, importContent } from '../market/media.ts'
import { enrollWithAgency } from '../agency/client.ts'
import { EscrowNotReadyError } from '../escrow/errors.ts'
import { EscrowRole } from '../roles/escrow.ts'
import { BuyerRole } from '../roles/buyer.ts'
import { SellerRole } from '../roles/seller.ts'
import type { Buyer } from '../buyer/buyer.ts'
import type { ProgressEvent } from './progress.ts'
import type { Seller } from '../seller/seller.ts'
import { requestAccount } from '../../protocols/escrow/account.ts'
import { ENTRY_KINDS } from '../escrow/ledger-store.ts'
import type { EntryKind } from '../escrow/ledger-store.ts'
import { parseBootstrapAddress } from '../config.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { BadRequestError } from '../errors.ts'
import { parseMoney } from '../format.ts'
import { UnknownContentError } from '../content/store.ts'
import { MAX_FIND_LIMIT, MAX_FIND_TIMEOUT_MS } from '../discovery/discovery.ts'
import { MAX_CODE_TTL_MS } from '../agency/agency.ts'
import { AgencyNotRunningError } from '../agency/errors.ts'
import { AgencyRole } from '../roles/agency.ts'
import { isCertificatePurpose } from '../../device/pki/index.ts'
import { LIMITS } from '../../device/objects/market.ts'
import type { Agency, IssuedCertificate } from '../agency/agency.ts'
import type { KeyfairNode } from '../keyfair-node.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** A control endpoint; `progress` reaches a client that asked for a streamed answer */
export type Route = (body: unknown, signal: AbortSignal, progress: (event: ProgressEvent) => void) => Promise<unknown>

export interface ControlRoutes {
  id: Route
  peers: Route
  status: Route
  announce: Route
  find: Route
  stop: Route
  'agency.enrollCode': Route
  'agency.issue': Route
  'agency.revoke': Route
  'agency.crl': Route
  'agency.certs': Route
  'device.status': Route
  'device.init': Route
  'device.unlock': Route
  'device.lock': Route
  'device.enroll': Route
  'device.certificates': Route
  'escrow.enroll': Route
  'escrow.info': Route
  'escrow.crlRefresh': Route
  'escrow.deposit': Route
  'escrow.withdraw': Route
  'escrow.ledger': Route
  'escrow.holds': Route
  'escrow.audit': Route
  'escrow.accounts': Route
  balance: Route
  trust: Route
  publish: Route
  search: Route
  quote: Route
  buy: Route
  play: Route
  library: Route
  renew: Route
  purchases: Route
  confirm: Route
  dispute: Route
  contents: Route
  remove: Route
  providers: Route
  export: Route
  import: Route
  /** the log file's level, read or changed: served by a daemon that keeps one */
  'log.level'?: Route
}

/** The control API's endpoints over a running node; `onStop` ends the process's node. */
export function controlRoutes (node: KeyfairNode, onStop: () => void): ControlRoutes {
  return {
    id: async () => {
      const status = node.status()
      return { peerId: status.peerId, addresses: status.addresses }
    },
    peers: async () => ({ peers: node.peers() }),
    status: async () => node.status(),
    announce: async (body, signal) => {
      const { contentId, keywords } = fields(body)
      if (typeof contentId !== 'string') throw new BadRequestError('contentId must be a string')
      if (!Array.isArray(keywords) || !keywords.every(k => typeof k === 'string')) throw new BadRequestError('keywords must be a list of strings')
      return node.announce(contentId, keywords, signal)
    },
    find: async (body, signal) => {
      const { keyword, limit, timeoutMs } = fields(body)
      if (typeof keyword !== 'string') throw new BadRequestError('keyword must be a string')
      const cid = keywordCid(keyword)
      const providers = await node.find(keyword, {
        signal,
        limit: optionalInt(limit, 'limit', 1, MAX_FIND_LIMIT),
        timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS)
      })
      return { keyword, cid: cid.toString(), providers }
    },
    stop: async () => {
      setImmediate(onStop)
      return { stopping: true }
    },
    'agency.enrollCode': async body => {
      const { kind, ttlMs } = fields(body)
      if (kind !== 'device' && kind !== 'escrow') throw new BadRequestError("kind must be 'device' or 'escrow'")
      const code = agencyOf(node).createEnrollmentCode({ kind, ttlMs: optionalInt(ttlMs, 'ttlMs', 1, MAX_CODE_TTL_MS) ?? 15 * 60_000 })
      return { code: code.code, kind: code.kind, expiresAt: code.expiresAt.toISOString() }
    },
    'agency.issue': async body => {
      const { csr, purpose, validityDays } = fields(body)
      if (typeof csr !== 'string') throw new BadRequestError('csr must be a PEM string')
      if (!isCertificatePurpose(purpose)) throw new BadRequestError('purpose must be device-signing, device-encryption or escrow')
      return certificateJson(agencyOf(node).issue(csr, purpose, { validityDays: optionalInt(validityDays, 'validityDays', 1, 3650) }))
    },
    'agency.revoke': async body => {
      const { target, reason } = fields(body)
      if (typeof target !== 'string') throw new BadRequestError('target must be a serial, device id or peer id')
      if (reason != null && typeof reason !== 'string') throw new BadRequestError('reason must be a string')
      const result = agencyOf(node).revoke(target, reason ?? undefined)
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
    'device.status': async (_body, signal) => {
      const status = await node.device.status()
      return status.enrolled ? { ...status, revocation: await deviceRevocation(node, signal) } : status
    },
    'device.init': async body => {
      const { passphrase, bits } = fields(body)
      if (typeof passphrase !== 'string') throw new BadRequestError('passphrase must be a string')
      return node.device.initialise({ passphrase, bits: optionalInt(bits, 'bits', 2048, 8192) })
    },
    'device.unlock': async body => {
      const { passphrase } = fields(body)
      if (typeof passphrase !== 'string') throw new BadRequestError('passphrase must be a string')
      return node.device.unlock({ passphrase })
    },
    'device.lock': async () => {
      await node.device.lock()
      return { locked: true }
    },
    'device.enroll': async (body, signal) => {
      const { agency, code } = fields(body)
      if (typeof agency !== 'string') throw new BadRequestError('agency must be a peer id or a multiaddr ending in /p2p/<peer id>')
      if (typeof code !== 'string') throw new BadRequestError('code must be a string')
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
    },
    'escrow.enroll': async (body, signal) => {
      const { agency, code } = fields(body)
      if (typeof agency !== 'string' || !agency.startsWith('/')) throw new BadRequestError('agency must be a multiaddr ending in /p2p/<peer id>')
      if (typeof code !== 'string') throw new BadRequestError('code must be a string')
      parseAgencyAddress(agency)
      const { certificate, root } = await escrowOf(node).enroll(agency, code, { signal })
      await node.market.trust.set(agency, root, { signal })
      const cert = new X509Certificate(certificate)
      return { peerId: node.status().peerId, serial: cert.serialNumber.toLowerCase(), notAfter: new Date(cert.validTo).toISOString() }
    },
    'escrow.info': async () => {
      const role = escrowOf(node)
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
    'escrow.crlRefresh': async (_body, signal) => {
      const crl = await escrowOf(node).refreshCrl({ signal: timeoutSignal(CRL_REFRESH_TIMEOUT_MS, signal) })
      return { number: crl.number.toString(), thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate.toISOString(), revoked: crl.revoked.size }
    },
    'escrow.deposit': async body => {
      const { account, amount, memo } = moneyFields(body, currencyOf(node))
      return { account, balance: await escrowOf(node).ledger.deposit(account, amount, memo), currency: currencyOf(node) }
    },
    'escrow.withdraw': async body => {
      const { account, amount, memo } = moneyFields(body, currencyOf(node))
      return { account, balance: await escrowOf(node).ledger.withdraw(account, amount, memo), currency: currencyOf(node) }
    },
    'escrow.ledger': async body => {
      const { account, kind, since, limit } = fields(body)
      if (account != null && typeof account !== 'string') throw new BadRequestError('account must be a string')
      if (kind != null && !ENTRY_KINDS.includes(kind as EntryKind)) throw new BadRequestError(`kind must be one of ${ENTRY_KINDS.join(', ')}`)
      return {
        postings: await escrowOf(node).ledger.postings({
          account: account ?? undefined,
          kind: (kind ?? undefined) as EntryKind | undefined,
          since: optionalInt(since, 'since', 0, Number.MAX_SAFE_INTEGER),
          limit: optionalInt(limit, 'limit', 1, 10_000)
        }),
        currency: currencyOf(node)
      }
    },
    'escrow.holds': async body => {
      const { state, buyer, limit } = fields(body)
      if (state != null && state !== 'open' && state !== 'released' && state !== 'refunded') throw new BadRequestError('state must be open, released or refunded')
      if (buyer != null && typeof buyer !== 'string') throw new BadRequestError('buyer must be a peer id')
      const holds = await escrowOf(node).ledger.holds({ state: state ?? undefined, buyer: buyer ?? undefined, limit: optionalInt(limit, 'limit', 1, 10_000) })
      return { holds: holds.map(({ answer, requestBytes, ...rest }) => rest), currency: currencyOf(node) }
    },
    'escrow.audit': async () => ({ ...(await escrowOf(node).ledger.audit()), currency: currencyOf(node) }),
    'escrow.accounts': async () => ({ accounts: await escrowOf(node).ledger.accounts(), openHolds: (await escrowOf(node).ledger.holds({ state: 'open', limit: 10_000 })).length, currency: currencyOf(node) }),
    balance: async (body, signal) => {
      const { escrow } = fields(body)
      if (typeof escrow !== 'string') throw new BadRequestError('escrow must be a peer id or a multiaddr ending in /p2p/<peer id>')
      return requestAccount({ connectionManager: node.streams }, parseAgencyAddress(escrow), { signal })
    },
    trust: async (body, signal) => {
      const { agency } = fields(body)
      if (typeof agency !== 'string' || !agency.startsWith('/')) throw new BadRequestError('agency must be a multiaddr ending in /p2p/<peer id>')
      parseAgencyAddress(agency)
      const record = await node.market.trust.set(agency, undefined, { signal })
      return { agency: record.address, root: new X509Certificate(record.root).fingerprint256 }
    },
    publish: async (body, signal, progress) => {
      const { file, title, tags, price, currency, t, n, escrows, validDays, chunkSize, open, licenceTtlMs } = fields(body)
      if (typeof file !== 'string') throw new BadRequestError('file must be a path')
      if (typeof title !== 'string' || title.trim() === '' || title.length > 256) throw new BadRequestError('title must be 1..256 characters')
      if (!Array.isArray(tags) || !tags.every(x => typeof x === 'string' && x.length <= 64) || tags.length > 32) throw new BadRequestError('tags must be at most 32 strings')
      if (!Array.isArray(escrows) || !escrows.every(x => typeof x === 'string')) throw new BadRequestError('escrows must be a list of peer ids or multiaddrs')
      if (currency != null && typeof currency !== 'string') throw new BadRequestError('currency must be a string')
      const days = optionalInt(validDays, 'validDays', 1, 3650)
      if (open != null && typeof open !== 'boolean') throw new BadRequestError('open must be true or false')
      return sellerOf(node).publish(file, {
        title,
        tags,
        price: requiredInt(price, 'price', 0, Number.MAX_SAFE_INTEGER),
        currency: currency ?? undefined,
        t: requiredInt(t, 't', 1, 64),
        n: requiredInt(n, 'n', 1, 64),
        escrows,
        validForMs: days != null ? days * 86_400_000 : undefined,
        open: open === true,
        licenceTtlMs: optionalInt(licenceTtlMs, 'licenceTtlMs', LIMITS.minLicenceTtlMs, LIMITS.maxLicenceTtlMs),
        chunkSize: optionalInt(chunkSize, 'chunkSize', 1024, 16 * 1024 * 1024),
        signal,
        onProgress: progress
      })
    },
    search: async (body, signal) => {
      const { words, timeoutMs } = fields(body)
      if (!Array.isArray(words) || words.length === 0 || !words.every(w => typeof w === 'string')) throw new BadRequestError('words must be a non-empty list of strings')
      return { offers: await buyerOf(node).search(words, { signal, timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS) }) }
    },
    quote: async (body, signal) => {
      const { offer } = fields(body)
      if (typeof offer !== 'string') throw new BadRequestError('offer must be an offer id')
      return buyerOf(node).quote(offer, { signal })
    },
    buy: async (body, signal, progress) => {
      const { offer, output, seed, from } = fields(body)
      if (typeof offer !== 'string') throw new BadRequestError('offer must be an offer id')
      if (output != null && typeof output !== 'string') throw new BadRequestError('output must be a path')
      if (from != null && (!Array.isArray(from) || from.length > 64 || !from.every(isPeerIdString))) throw new BadRequestError('from must be a list of at most 64 peer ids')
      return buyerOf(node).buy(offer, { output: output ?? undefined, seed: seed === true, from: from ?? undefined, signal, onProgress: progress })
    },
    play: async (body, _signal, progress) => {
      const { content, output } = fields(body)
      if (typeof content !== 'string' || typeof output !== 'string') throw new BadRequestError('content (a content id) and output (a path) are needed')
      return buyerOf(node).play(content, output, progress)
    },
    library: async () => ({ licences: await node.device.library() }),
    renew: async (body, signal) => {
      const { content } = fields(body)
      if (typeof content !== 'string' || content.length > 200) throw new BadRequestError('content must be a content id')
      return buyerOf(node).renew(content, { signal })
    },
    purchases: async () => ({ purchases: await node.device.purchases() }),
    confirm: async body => {
      const { purchase } = fields(body)
      if (typeof purchase !== 'string') throw new BadRequestError('purchase must be a purchase id')
      return buyerOf(node).confirm(purchase)
    },
    dispute: async body => {
      const { purchase, chunk } = fields(body)
      if (typeof purchase !== 'string') throw new BadRequestError('purchase must be a purchase id')
      const index = optionalInt(chunk, 'chunk', 0, 2 ** 32 - 1)
      return buyerOf(node).dispute(purchase, index != null ? { index } : undefined)
    },
    contents: async () => ({ contents: await node.market.content.list() }),
    remove: async (body, signal) => {
      const { content } = fields(body)
      if (typeof content !== 'string' || !isCidString(content)) throw new BadRequestError('content must be a content id')
      if (await node.market.content.manifest(content) == null) throw new UnknownContentError(content)
      await node.discovery.withdraw(content, { signal })
      await node.market.content.remove(content)
      return { content, removed: true }
    },
    providers: async (body, signal) => {
      const { content, timeoutMs } = fields(body)
      if (typeof content !== 'string' || !isCidString(content)) throw new BadRequestError('content must be a CID')
      return { content, providers: await node.findProviders(content, { signal, timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS) }) }
    },
    export: async body => {
      const { content, path } = fields(body)
      if (typeof content !== 'string' || typeof path !== 'string') throw new BadRequestError('content (a content id) and path (a new directory) are needed')
      return exportContent(node.market, content, path)
    },
    import: async (body, signal) => {
      const { path, seed } = fields(body)
      if (typeof path !== 'string') throw new BadRequestError('path must be a directory written by keyfair export')
      const imported = await importContent(node.market, path, { seed: seed === true })
      if (imported.seeding) {
        const offer = await node.market.knownOffer(imported.offers[0] ?? '')
        await node.announce(imported.content, keywordsOf(offer.body.title, ...offer.body.tags), signal, imported.offers)
      }
      return imported
    },
    'agency.certs': async () => ({
      certificates: agencyOf(node).certificates().map(c => {
        const { pem, ...rest } = certificateJson(c)
        return rest
      })
    })
  }
}

/** `keyfair escrow crl refresh` waits this long for the agency */
const CRL_REFRESH_TIMEOUT_MS = 10_000

/** Revocation, as the device's own agency sees it: this node's newest CRL against the device's public certificates */
async function deviceRevocation (node: KeyfairNode, signal: AbortSignal): Promise<Record<string, unknown>> {
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

function sellerOf (node: KeyfairNode): Seller {
  const role = node.roles.find(r => r.name === 'seller')
  if (!(role instanceof SellerRole)) throw new RoleNotRunningError('seller')
  return role.seller
}

function buyerOf (node: KeyfairNode): Buyer {
  const role = node.roles.find(r => r.name === 'buyer')
  if (!(role instanceof BuyerRole)) throw new RoleNotRunningError('buyer')
  return role.buyer
}

class RoleNotRunningError extends BadRequestError {
  constructor (role: string) {
    super(`this node does not run the ${role} role (start it with --role ${role})`)
  }
}

function requiredInt (value: unknown, name: string, min: number, max: number): number {
  const n = optionalInt(value, name, min, max)
  if (n == null) throw new BadRequestError(`${name} is required`)
  return n
}

function parseAgencyAddress (value: string): PeerId | Multiaddr {
  try {
    if (value.startsWith('/')) return parseBootstrapAddress(value)
    return peerIdFromString(value)
  } catch (err: any) {
    throw new BadRequestError(`agency '${value}' is neither a peer id nor a /…/p2p/<peer id> multiaddr`, { cause: err })
  }
}

function describeCertificates (signing: string, encryption: string): Record<string, unknown> {
  const describe = (pem: string): Record<string, string> => {
    const cert = new X509Certificate(pem)
    return { serial: cert.serialNumber.toLowerCase(), notAfter: new Date(cert.validTo).toISOString() }
  }
  return { signingCertificate: describe(signing), encryptionCertificate: describe(encryption) }
}


function escrowOf (node: KeyfairNode): EscrowRole {
  const role = node.roles.find(r => r.name === 'escrow')
  if (!(role instanceof EscrowRole)) throw new EscrowNotReadyError('this node does not run the escrow role (start it with --role escrow)')
  return role
}

/** The currency the escrow settles: every amount of its ledger is in its minor units */
function currencyOf (node: KeyfairNode): string {
  return escrowOf(node).escrow.currency
}

/** An account and an amount: minor units, or a decimal string of major units of `currency` ("12.50") */
function moneyFields (body: unknown, currency: string): { account: string, amount: number, memo?: string } {
  const { account, amount: given, memo } = fields(body)
  const amount = typeof given === 'string' ? parseMoney(given, currency) : given
  if (typeof account !== 'string') throw new BadRequestError('account must be a peer id')
  try {
    peerIdFromString(account)
  } catch {
    throw new BadRequestError(`'${account}' is not a peer id`)
  }
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) throw new BadRequestError('amount must be a whole number of minor units above 0, or a decimal of major units')
  if (memo != null && (typeof memo !== 'string' || memo.length > 200)) throw new BadRequestError('memo must be a string of at most 200 characters')
  return memo == null ? { account, amount } : { account, amount, memo }
}

function agencyOf (node: KeyfairNode): Agency {
  const role = node.roles.find(r => r.name === 'agency')
  if (!(role instanceof AgencyRole)) throw new AgencyNotRunningError()
  return role.agency
}

function certificateJson (cert: IssuedCertificate): Record<string, unknown> & { pem: string } {
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

function fields (body: unknown): Record<string, unknown> {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('request body must be a JSON object')
  return body as Record<string, unknown>
}

function optionalInt (value: unknown, name: string, min: number, max: number): number | undefined {
  if (value == null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequestError(`${name} must be an integer in ${min}..${max}`)
  }
  return value
}

function isPeerIdString (value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    peerIdFromString(value)
    return true
  } catch {
    return false
  }
}

function isCidString (value: string): boolean {
  try {
    CID.parse(value)
    return true
  } catch {
    return false
  }
}
