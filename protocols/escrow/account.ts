/**
 * /keyfair/escrow/account/1.0.0 (docs/protocol.md, Protocols): the caller's own account at this
 * escrow, named by its authenticated peer id: balance, holds as a buyer, sales (holds paying the
 * caller as a seller) and recent postings.
 */
import { FramedService, expectArray, expectRecord, expectString, expectUint, withFrames } from '../toolkit/index.ts'
import { BadMessageError } from '../errors.ts'
import type { FrameStream, FramedServiceComponents, ProtocolLimits, StreamOpener } from '../toolkit/index.ts'
import type { AbortOptions, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const ACCOUNT_PROTOCOL = '/keyfair/escrow/account/1.0.0'

export const ACCOUNT_LIMITS: ProtocolLimits = {
  maxFrameBytes: 256 * 1024,
  // the request is `{ v: 1 }`
  maxRequestBytes: 1024,
  readTimeoutMs: 10_000,
  maxInboundStreams: 32,
  maxOutboundStreams: 16
}

/** A hold as the account's owner sees it: no other party's identity */
export interface HoldSummary {
  hold: string
  purchase: string
  amount: number
  state: string
  expiresAt: number
}

export interface AccountAnswer {
  v: 1
  account: string
  balance: number
  currency: string
  holds: HoldSummary[]
  /** holds that pay the caller as a seller (absent from an escrow that predates them) */
  sales?: HoldSummary[]
  postings: Array<{ entry: number, at: number, kind: string, account: string, amount: number, hold?: string, memo?: string }>
}

export interface AccountSource {
  account: (caller: string) => AccountAnswer | Promise<AccountAnswer>
}

export class AccountService extends FramedService {
  readonly protocol = ACCOUNT_PROTOCOL
  private readonly source: AccountSource

  constructor (components: FramedServiceComponents, init: { source: AccountSource, limits?: Partial<ProtocolLimits> }) {
    super(components, 'keyfair:escrow:account', { ...ACCOUNT_LIMITS, ...init.limits })
    this.source = init.source
  }

  protected async handle (frames: FrameStream, connection: Connection): Promise<void> {
    const message = expectRecord(await frames.readMessage())
    if (message.v !== 1) throw new BadMessageError('unsupported version')
    await frames.writeMessage(await this.source.account(connection.remotePeer.toString()))
  }
}

export async function requestAccount (components: { connectionManager: StreamOpener }, escrow: PeerId | Multiaddr | Multiaddr[], options: AbortOptions = {}): Promise<AccountAnswer> {
  return withFrames(components.connectionManager, escrow, ACCOUNT_PROTOCOL, ACCOUNT_LIMITS, async frames => {
    await frames.writeMessage({ v: 1 }, options)
    const a = expectRecord(await frames.readMessage(options), 'account')
    return {
      v: 1,
      account: expectString(a.account, 'account', 128),
      balance: expectUint(a.balance, 'balance'),
      currency: expectString(a.currency, 'currency', 12),
      holds: expectArray(a.holds, 'holds', 100) as HoldSummary[],
      ...(a.sales == null ? {} : { sales: expectArray(a.sales, 'sales', 100) as HoldSummary[] }),
      postings: expectArray(a.postings, 'postings', 100) as AccountAnswer['postings']
    }
  }, options)
}
