// What a control API client meets: the node's own refusals, and answers that broke off.
import { KeyfairError } from '../../protocols/errors.ts'

/** An error the node answered with; `code` is the node's stable code. */
export class ControlApiError extends KeyfairError {}

/** A streamed answer that ended before its result (the node stopped, or the connection broke) */
export class TruncatedAnswerError extends KeyfairError {
  static readonly code = 'ERR_TRUNCATED_ANSWER'
  constructor (message = 'the node ended the answer early') {
    super(message, TruncatedAnswerError.code)
  }
}
