// Refusals of an escrow (DESIGN §4, §7): each with a stable code, each leaving the
// ledger as it was.
import { KeyfairError } from '../../protocols/errors.ts'

export class EscrowError extends KeyfairError {}

export class InsufficientFundsError extends EscrowError {
  static readonly code = 'ERR_INSUFFICIENT_FUNDS'
  constructor (account: string, balance: number, amount: number) {
    super(`account ${account} holds ${balance}, ${amount} needed`, InsufficientFundsError.code)
  }
}

export class PurchaseIdUsedError extends EscrowError {
  static readonly code = 'ERR_PURCHASE_ID_USED'
  constructor (purchase: string) {
    super(`purchase id ${purchase} already names another request`, PurchaseIdUsedError.code)
  }
}

function refusal (code: string): new (message: string) => EscrowError {
  return class extends EscrowError {
    static readonly code = code
    constructor (message: string) {
      super(message, code)
    }
  }
}

export const NotNamedError = refusal('ERR_NOT_NAMED')
export const WrongAmountError = refusal('ERR_WRONG_AMOUNT')
export const BadBlindedError = refusal('ERR_BAD_BLINDED')
export const ClockWindowError = refusal('ERR_CLOCK_WINDOW')
export const OfferExpiredError = refusal('ERR_OFFER_EXPIRED')
export const CurrencyError = refusal('ERR_CURRENCY')
export const NotBuyerError = refusal('ERR_NOT_BUYER')
export const UnknownPurchaseError = refusal('ERR_UNKNOWN_PURCHASE')
export const WrongDeviceError = refusal('ERR_WRONG_DEVICE')
export const HoldEndedError = refusal('ERR_HOLD_ENDED')
export const BadDisputeError = refusal('ERR_BAD_DISPUTE')
export const EscrowNotReadyError = refusal('ERR_ESCROW_NOT_READY')
export const ExponentRefusedError = refusal('ERR_EXPONENT')

/**
 * The ledger's database cannot be reached (PostgreSQL down, restarting, or the network
 * to it cut): nothing of the request was written, or its commit may have landed and a
 * retry of the same request gets the stored answer. Retry later.
 */
export class LedgerUnavailableError extends EscrowError {
  static readonly code = 'ERR_LEDGER_UNAVAILABLE'
  readonly retryable = true
  constructor (message = 'the escrow ledger is unavailable: retry later', options?: ErrorOptions) {
    super(message, LedgerUnavailableError.code, options)
  }
}

/**
 * This process is a standby of its escrow: another process of the same escrow holds the
 * ledger's lock and answers. It takes over when that one stops.
 */
export class EscrowStandbyError extends EscrowError {
  static readonly code = 'ERR_ESCROW_STANDBY'
  readonly retryable = true
  constructor () {
    super('this escrow process is a standby: another process of the same escrow is active', EscrowStandbyError.code)
  }
}
