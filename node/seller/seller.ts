// The seller's side of the market (docs/protocol.md, Roles): publish a work (encrypt once, split and
// wrap the key for t-of-n escrows, sign the offer, announce), and issue device-bound
// licences while online. A work's K stays sealed in the repo's key store (`content-<cid>`).
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { encryptFile } from '../../device/content-file.ts'
import { generateContentSecrets } from '../../device/crypto/index.ts'
import { TAG_LENGTH } from '../../device/crypto/content.ts'
import { encodeObject } from '../../device/objects/codec.ts'
import { LIMITS, contentIdOf } from '../../device/objects/market.ts'
import { signedId } from '../../device/objects/signed.ts'
import { requestEscrowInfo } from '../../protocols/escrow/info.ts'
import { BadCertificateError } from '../../device/pki/errors.ts'
import { BadRequestError } from '../errors.ts'
import { UnknownOfferError } from '../market/errors.ts'
import { FileNotPublishableError, NamedEscrowUnusableError, NoContentKeyError, OpenNeedsThresholdError, TooFewEscrowsError } from './errors.ts'
import { timeoutSignal } from '../../protocols/toolkit/index.ts'
import { escrowServiceCid, keywordsOf } from '../discovery/keywords.ts'
import { decodeContentKey, encodeContentKey } from '../keys/content-key.ts'
import { contentKeyName } from '../keys/keystore.ts'
import { DEFAULT_LICENCE_TTL_MS, createLicence, createOffer } from './offers.ts'
import type { Progress } from '../../device/content-file.ts'
import type { PublishProgress } from '../control/progress.ts'
import type { Stats } from 'node:fs'
import type { ContentManifest } from '../../device/crypto/index.ts'
import type { EscrowRef, Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'
import type { LicenceRequest } from '../../protocols/market/license.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { Discovery } from '../discovery/discovery.ts'
import type { Market } from '../market/market.ts'
import type { UnlockedKeys } from '../keys/keystore.ts'
import type { AbortOptions, Logger, PrivateKey } from '@libp2p/interface'

/** The size of a file that can be published, or ERR_FILE saying why it cannot */
async function publishableSize (file: string): Promise<number> {
  let info: Stats
  try {
    info = await stat(file)
  } catch (err: any) {
    throw new FileNotPublishableError(`cannot read ${file} (${String(err.code ?? err.message)})`, { cause: err })
  }
  if (info.isDirectory()) throw new FileNotPublishableError(`${file} is a directory; publish one file`)
  if (!info.isFile()) throw new FileNotPublishableError(`${file} is not a regular file; publish one file`)
  return info.size
}

/** How long an escrow named for an offer has to describe itself */
const ESCROW_INFO_TIMEOUT_MS = 10_000

/** How long the agency has to send its revocation list when the one held is stale */
const CRL_FETCH_TIMEOUT_MS = 10_000

export interface PublishOptions {
  title: string
  tags: string[]
  /** minor units paid to each of the t escrows */
  price: number
  currency?: string
  t: number
  /** escrows by multiaddr or peer id; when fewer than n are given, more are picked from the DHT */
  escrows: string[]
  n: number
  /** how long the offer stands */
  validForMs?: number
  /**
   * Also sell without the seller online (superdistribution): the offer carries shares of
   * K itself, so t escrows together could learn K. Needs t ≥ 2. Default: device-bound only
   */
  open?: boolean
  /** how long a licence plays offline before it is renewed (default 30 days) */
  licenceTtlMs?: number
  chunkSize?: number
  onProgress?: (event: PublishProgress) => void
  signal?: AbortSignal
}

export interface Published {
  content: string
  offer: string
  title: string
  size: number
  price: number
  currency: string
  t: number
  escrows: string[]
  /** the offer carries open shares: buyers need no licence from the seller */
  open: boolean
  licenceTtlMs: number
  announced: boolean
}

export interface SellerInit {
  repoPath: string
  privateKey: PrivateKey
  peerId: string
  market: Market
  discovery: Discovery
  streams: StreamOpener
  /** the repo's unlocked key store: each work's K is sealed in it */
  keys: () => UnlockedKeys
  log: Logger
}

export class Seller {
  private readonly init: SellerInit

  constructor (init: SellerInit) {
    this.init = init
  }

  async publish (file: string, options: PublishOptions): Promise<Published> {
    const { market, discovery } = this.init
    if (!Number.isInteger(options.t) || !Number.isInteger(options.n) || options.t < 1 || options.n < options.t || options.n > 64) {
      throw new BadRequestError('escrows must be t-of-n with 1 ≤ t ≤ n ≤ 64')
    }
    if (!Number.isSafeInteger(options.price) || options.price < 0) throw new BadRequestError('price must be a whole number of minor units')
    const open = options.open === true
    // one escrow of an open offer could unwrap its own share, and with t = 1 that is K
    if (open && options.t < 2) throw new OpenNeedsThresholdError()
    const licenceTtl = options.licenceTtlMs ?? DEFAULT_LICENCE_TTL_MS
    if (!Number.isSafeInteger(licenceTtl) || licenceTtl < LIMITS.minLicenceTtlMs || licenceTtl > LIMITS.maxLicenceTtlMs) {
      throw new BadRequestError(`a licence's offline lifetime must be ${LIMITS.minLicenceTtlMs / 1000} s to 10 years`)
    }
    const total = await publishableSize(file)
    // only the signal goes on: nothing of the caller's options may reach libp2p
    const escrows = await this.pickEscrows(options.escrows, options.n, options.signal)
    options.onProgress?.({ phase: 'escrows', escrows: escrows.map(e => e.peer) })

    const secrets = generateContentSecrets()
    await mkdir(market.content.dir, { recursive: true })
    const staging = join(market.content.dir, `.publish-${process.pid}-${Date.now()}.kf`)
    let stored: { cid: string, manifest: ContentManifest }
    try {
      const encrypted = await encryptFile(file, staging, { ...secrets, chunkSize: options.chunkSize }, {
        signal: options.signal,
        // stored bytes carry a tag per chunk; the bar counts the file's own bytes
        onProgress: (p: Progress) => options.onProgress?.({ phase: 'encrypt', bytes: Math.min(total, p.bytes - p.chunks * TAG_LENGTH), total })
      })
      stored = await market.content.putManifest(encodeObject(encrypted))
      await rename(staging, market.content.dataFile(stored.cid))
    } catch (err) {
      await rm(staging, { force: true })
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') throw new FileNotPublishableError(`cannot read ${file}`, { cause: err })
      if (code === 'EISDIR') throw new FileNotPublishableError(`${file} is a directory; publish one file`, { cause: err })
      throw err
    }
    const { cid, manifest } = stored
    const size = manifest.size
    await market.content.markComplete(cid)

    const offer = await createOffer({
      sellerKey: this.init.privateKey,
      terms: {
        content: contentIdOf(manifest),
        price: options.price,
        currency: options.currency ?? 'EUR',
        escrows,
        t: options.t,
        expiry: Date.now() + (options.validForMs ?? 365 * 86_400_000)
      },
      title: options.title,
      tags: options.tags,
      key: secrets.key,
      contentSalt: secrets.salt,
      open,
      licenceTtl
    })
    const offerId = await market.content.addOffer(offer)
    // K is kept, sealed, to issue device-bound licences
    const sealed = encodeContentKey({ key: secrets.key, salt: secrets.salt, offers: [offerId] })
    try {
      await this.init.keys().put(contentKeyName(cid), sealed)
    } finally {
      sealed.fill(0)
      secrets.key.fill(0)
    }
    await market.content.setServing(cid, true)
    options.onProgress?.({ phase: 'announce' })
    const announced = await discovery.announce(cid, keywordsOf(options.title, ...options.tags), { signal: options.signal, offers: [offerId] })
    this.init.log('published %s as offer %s', cid, offerId)
    return {
      content: cid,
      offer: offerId,
      title: options.title,
      size,
      price: options.price,
      currency: options.currency ?? 'EUR',
      t: options.t,
      escrows: escrows.map(e => e.peer),
      open,
      licenceTtlMs: licenceTtl,
      announced: announced.provided.every(p => p.ok)
    }
  }

  /** A licence bound to the device whose agency certificates are presented */
  async licence (request: LicenceRequest, options: AbortOptions = {}): Promise<unknown> {
    const { market } = this.init
    const offer = await this.ownOffer(request.offer.toString())
    const signing = await market.trust.verify(request.signing, 'device-signing', options)
    const encryption = await market.trust.verify(request.encryption, 'device-encryption', options)
    if (signing.subjectCommonName !== encryption.subjectCommonName) throw new BadCertificateError('the two certificates name different devices')
    const secrets = await this.secretsOf(offer.body.terms.content.toString())
    try {
      const licence = await createLicence({
        sellerKey: this.init.privateKey,
        offer,
        key: secrets.key,
        contentSalt: secrets.salt,
        device: { id: encryption.subjectCommonName, encryptionKey: encryption.publicKey }
      })
      this.init.log('licence for offer %s to device %s', request.offer, encryption.subjectCommonName)
      return licence
    } finally {
      secrets.key.fill(0)
    }
  }

  private async ownOffer (id: string): Promise<Signed<Offer>> {
    for (const summary of await this.init.market.content.list()) {
      for (const offer of await this.init.market.content.offers(summary.content)) {
        if (offer.body.terms.seller === this.init.peerId && signedId(offer).toString() === id) return offer
      }
    }
    throw new UnknownOfferError(id, `this seller has no offer ${id}`)
  }

  private async secretsOf (cid: string): Promise<{ key: Uint8Array, salt: Uint8Array }> {
    const record = await this.init.keys().get(contentKeyName(cid))
    if (record == null) throw new NoContentKeyError(cid)
    try {
      return decodeContentKey(record)
    } finally {
      record.fill(0)
    }
  }

  /** Escrows named by the seller, checked against the agency; topped up from the DHT */
  private async pickEscrows (named: string[], n: number, signal?: AbortSignal): Promise<EscrowRef[]> {
    const picked: EscrowRef[] = []
    const tried = new Set<string>()
    const check = async (address: string): Promise<void> => {
      const target = address.startsWith('/') ? multiaddr(address) : peerIdFromString(address)
      const info = await requestEscrowInfo({ connectionManager: this.init.streams }, target, { signal: timeoutSignal(ESCROW_INFO_TIMEOUT_MS, signal) })
      // a stale CRL is fetched again here (after a restart, say): bounded on its own
      await this.init.market.trust.verifyEscrow(info, { signal: timeoutSignal(CRL_FETCH_TIMEOUT_MS, signal) })
      if (!picked.some(e => e.peer === info.peer)) picked.push({ peer: info.peer, n: info.n })
      tried.add(info.peer)
    }
    for (const address of named) {
      try {
        await check(address)
      } catch (err) {
        throw new NamedEscrowUnusableError(address, err)
      }
    }
    if (picked.length < n) {
      for await (const provider of this.init.discovery.findProviders(escrowServiceCid(), { limit: 64, timeoutMs: 10_000, signal })) {
        if (picked.length >= n) break
        if (tried.has(provider.peerId) || provider.peerId === this.init.peerId) continue
        tried.add(provider.peerId)
        try {
          await check(provider.peerId)
        } catch (err: any) {
          this.init.log('skipping escrow %s: %s', provider.peerId, err.code ?? err.message)
        }
      }
    }
    if (picked.length < n) throw new TooFewEscrowsError(picked.length, n)
    return picked.slice(0, n)
  }
}
