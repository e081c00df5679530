import { KeyfairError } from '../device/error-root.ts'

export { KeyfairError }

/** A frame longer than the protocol's maximum: the stream is reset. */
export class FrameTooLargeError extends KeyfairError {
  static readonly code = 'ERR_FRAME_TOO_LARGE'
  constructor (message = 'frame exceeds the protocol maximum', options?: ErrorOptions) {
    super(message, FrameTooLargeError.code, options)
  }
}

/** The remote ended the stream in the middle of (or instead of) a frame. */
export class TruncatedFrameError extends KeyfairError {
  static readonly code = 'ERR_TRUNCATED_FRAME'
  constructor (message = 'stream ended before a complete frame arrived', options?: ErrorOptions) {
    super(message, TruncatedFrameError.code, options)
  }
}

/** A frame whose kind or encoding cannot be decoded. */
export class MalformedFrameError extends KeyfairError {
  static readonly code = 'ERR_MALFORMED_FRAME'
  constructor (message = 'frame could not be decoded', options?: ErrorOptions) {
    super(message, MalformedFrameError.code, options)
  }
}

/** No frame arrived within the read timeout. */
export class ReadTimeoutError extends KeyfairError {
  static readonly code = 'ERR_READ_TIMEOUT'
  constructor (message = 'timed out waiting for a frame', options?: ErrorOptions) {
    super(message, ReadTimeoutError.code, options)
  }
}

/**
 * The node's budget for inbound data has no room for this stream: its peer holds more
 * than its share of unfinished frames, or the most while the node is at its ceiling.
 */
export class BudgetExceededError extends KeyfairError {
  static readonly code = 'ERR_BUDGET_EXCEEDED'
  constructor (message = 'over the budget for unfinished frames', options?: ErrorOptions) {
    super(message, BudgetExceededError.code, options)
  }
}

/** A frame stopped arriving while memory was tight: dropped long before the read timeout. */
export class FrameStalledError extends KeyfairError {
  static readonly code = 'ERR_FRAME_STALLED'
  constructor (message = 'frame stalled while memory is tight', options?: ErrorOptions) {
    super(message, FrameStalledError.code, options)
  }
}

/** A decoded message that does not have the shape the protocol requires. */
export class BadMessageError extends KeyfairError {
  static readonly code = 'ERR_BAD_MESSAGE'
  constructor (message: string, options?: ErrorOptions) {
    super(message, BadMessageError.code, options)
  }
}

/** The caller aborted the operation (its signal fired). */
export class AbortedError extends KeyfairError {
  static readonly code = 'ERR_ABORTED'
  constructor (message = 'operation aborted', options?: ErrorOptions) {
    super(message, AbortedError.code, options)
  }
}

/** The remote answered with an error frame; `code` is the remote's code. */
export class RemoteError extends KeyfairError {
  readonly remote = true
}

/** Errors that break framing itself: the only answer is to reset the stream. */
export function isFramingError (err: unknown): boolean {
  return err instanceof FrameTooLargeError ||
    err instanceof TruncatedFrameError ||
    err instanceof MalformedFrameError ||
    err instanceof ReadTimeoutError ||
    err instanceof BudgetExceededError ||
    err instanceof FrameStalledError
}
