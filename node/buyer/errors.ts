// The buyer's errors: one class per code on the one error root, and readers of any failure.
import { KeyfairError } from '../../protocols/errors.ts'

/**
 * The family of the buyer's own refusals; never thrown itself. Codes a lower layer already
 * names (a locked device, a bad signature, an unknown purchase) are thrown as that layer's
 * classes, so each code keeps one meaning.
 */
export abstract class BuyError extends KeyfairError {}

/** No provider served the manifest, or every provider dropped out before the last chunk */
export class NoProvidersError extends BuyError {
  static readonly code = 'ERR_NO_PROVIDERS'
  constructor (message = 'no provider of the content answered') {
    super(message, NoProvidersError.code)
  }
}

/** Fewer than t escrows answered: the purchase stays open for the next run */
export class EscrowsUnavailableError extends BuyError {
  static readonly code = 'ERR_ESCROWS_UNAVAILABLE'
  constructor (message = 'too few escrows answered; run buy again to retry') {
    super(message, EscrowsUnavailableError.code)
  }
}

/** The offer sells device-bound licences only and its seller cannot be reached */
export class SellerOfflineError extends BuyError {
  static readonly code = 'ERR_SELLER_OFFLINE'
  constructor (message = 'the seller is unreachable and sells device-bound licences only') {
    super(message, SellerOfflineError.code)
  }
}

/** Play was given an offer id where it takes a content id */
export class OfferIdGivenError extends BuyError {
  static readonly code = 'ERR_OFFER_ID_GIVEN'
  constructor (message = 'that is an offer id; play takes the content id') {
    super(message, OfferIdGivenError.code)
  }
}

/** The seller answered and refused a licence for this device; `code` is the seller's own */
export class LicenceRefusedError extends BuyError {
  constructor (reason: string, code: string) {
    super(`the seller refused a licence for this device: ${reason}`, code)
  }
}

/** A failure's code, when it carries one as a string (ours, libp2p's and Node's alike) */
export function codeOf (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

export function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** What a log line or a dropped provider's reason names: the code, else the message */
export function reasonOf (err: unknown): string {
  return codeOf(err) ?? messageOf(err)
}
