// The root of every keyfair error. It lives in device/, the bottom layer, so the sealed
// device, the protocols and the node all share it without importing upwards.
/**
 * Typed errors shared by every keyfair component. The `code` is stable and is
 * what crosses the wire in an error frame and the control API; callers branch
 * on `code` (or `instanceof`), never on `message`.
 */
export class KeyfairError extends Error {
  readonly code: string
  /**
   * Facts a caller can act on beyond the code (a balance, the amount needed, every escrow
   * and its reason): JSON values only. Error frames carry the numbers and short strings among
   * them; the control API carries all of them beside `code` and `message`.
   */
  details?: Record<string, unknown>

  constructor (message: string, code: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }

  override get name (): string {
    return this.constructor.name
  }
}
