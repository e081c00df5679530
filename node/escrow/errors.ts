// Refusals of an escrow (docs/protocol.md, escrow/unblind and Ledger): each with a stable code, each leaving the
// ledger as it was.
import { KeyfairError } from '../../protocols/errors.ts'

/** The family of the escrow's errors: never thrown itself, each member names its own code */
export abstract class EscrowError extends KeyfairError {}

export class InsufficientFundsError extends EscrowError {
  static readonly code = 'ERR_INSUFFICIENT_FUNDS'
  readonly balance: number
  readonly amount: number
  constructor (account: string, balance: number, amount: number) {
    super(`account ${account} holds ${balance}, ${amount} needed`, InsufficientFundsError.code)
    this.balance = balance
    this.amount = amount
    // the refusal carries both, in minor units: the buyer names them without parsing the message
    this.details = { balance, amount }
  }
}

/** The escrow already answered this purchase: its payment is final, no reservation of it can be cancelled */
export class AlreadyAnsweredError extends EscrowError {
  static readonly code = 'ERR_ALREADY_ANSWERED'
  constructor (purchase: string) {
    super(`purchase ${purchase} was already answered here: its payment is final (a dispute may refund it)`, AlreadyAnsweredError.code)
  }
}

export class PurchaseIdUsedError extends EscrowError {
  static readonly code = 'ERR_PURCHASE_ID_USED'
  constructor (purchase: string) {
    super(`purchase id ${purchase} already names another request`, PurchaseIdUsedError.code)
  }
}

/** This escrow is not one the offer names */
export class NotNamedError extends EscrowError {
  static readonly code = 'ERR_NOT_NAMED'
  constructor (message: string) {
    super(message, NotNamedError.code)
  }
}

/** The amount asked is not the price the offer sets */
export class WrongAmountError extends EscrowError {
  static readonly code = 'ERR_WRONG_AMOUNT'
  constructor (message: string) {
    super(message, WrongAmountError.code)
  }
}

/** The blinded value is not one this escrow can answer */
export class BadBlindedError extends EscrowError {
  static readonly code = 'ERR_BAD_BLINDED'
  constructor (message: string) {
    super(message, BadBlindedError.code)
  }
}

/** A statement dated outside the clock window this escrow accepts */
export class ClockWindowError extends EscrowError {
  static readonly code = 'ERR_CLOCK_WINDOW'
  constructor (message: string) {
    super(message, ClockWindowError.code)
  }
}

/** The offer has expired */
export class OfferExpiredError extends EscrowError {
  static readonly code = 'ERR_OFFER_EXPIRED'
  constructor (message: string) {
    super(message, OfferExpiredError.code)
  }
}

/** The offer is priced in another currency than the one this escrow settles */
export class CurrencyError extends EscrowError {
  static readonly code = 'ERR_CURRENCY'
  constructor (message: string) {
    super(message, CurrencyError.code)
  }
}

/** The request does not come from the purchase's buyer */
export class NotBuyerError extends EscrowError {
  static readonly code = 'ERR_NOT_BUYER'
  constructor (message: string) {
    super(message, NotBuyerError.code)
  }
}

/** The purchase's hold has ended (paid, refunded or expired) */
export class HoldEndedError extends EscrowError {
  static readonly code = 'ERR_HOLD_ENDED'
  constructor (message: string) {
    super(message, HoldEndedError.code)
  }
}

/** A dispute that does not hold up */
export class BadDisputeError extends EscrowError {
  static readonly code = 'ERR_BAD_DISPUTE'
  constructor (message: string) {
    super(message, BadDisputeError.code)
  }
}

/** The escrow cannot answer yet (its role, certificate or ledger is not ready) */
export class EscrowNotReadyError extends EscrowError {
  static readonly code = 'ERR_ESCROW_NOT_READY'
  constructor (message: string) {
    super(message, EscrowNotReadyError.code)
  }
}

// the escrow and the device mean the same by it: no such purchase here
export { UnknownPurchaseError } from '../../device/errors.ts'

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

/** An amount that is not whole minor units, or that would take a balance past the ledger's bound */
export class AmountOutOfRangeError extends EscrowError {
  static readonly code = 'ERR_AMOUNT'
  constructor (message = 'amount must be a whole number of minor units, 0 or more') {
    super(message, AmountOutOfRangeError.code)
  }
}

/** The ledger found itself inconsistent (a bug, or its database changed under it): nothing was written */
export class LedgerFaultError extends EscrowError {
  static readonly code = 'ERR_LEDGER'
  constructor (message: string) {
    super(message, LedgerFaultError.code)
  }
}

/** The ledger's database answered, and refused the connection (credentials, database name) */
export class LedgerConnectError extends EscrowError {
  static readonly code = 'ERR_LEDGER_CONNECT'
  constructor (message: string, options?: ErrorOptions) {
    super(message, LedgerConnectError.code, options)
  }
}

/** A ledger URL that is not a PostgreSQL one */
export class LedgerUrlError extends EscrowError {
  static readonly code = 'ERR_LEDGER_URL'
  constructor (protocol: string) {
    super(`${protocol} is not a PostgreSQL URL`, LedgerUrlError.code)
  }
}

export class UnknownHoldError extends EscrowError {
  static readonly code = 'ERR_UNKNOWN_HOLD'
  constructor (id: string) {
    super(`no hold ${id}`, UnknownHoldError.code)
  }
}

/** A ledger is moved only into a new, empty database */
export class LedgerNotEmptyError extends EscrowError {
  static readonly code = 'ERR_LEDGER_NOT_EMPTY'
  constructor () {
    super('the target ledger is not empty: moving a ledger needs a new, empty database', LedgerNotEmptyError.code)
  }
}

/** A moved ledger whose audit differs from the one taken before the move */
export class LedgerMoveError extends EscrowError {
  static readonly code = 'ERR_LEDGER_MOVE'
  constructor (message: string) {
    super(message, LedgerMoveError.code)
  }
}

/** A ledger that fails its audit is not moved */
export class AuditFailedError extends EscrowError {
  static readonly code = 'ERR_AUDIT_FAILED'
  constructor (violations: string[]) {
    super(`the ledger fails its audit; fix it before moving it: ${violations.slice(0, 3).join('; ')}`, AuditFailedError.code)
  }
}
