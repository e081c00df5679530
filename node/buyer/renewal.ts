// Licence renewal (the buyer's side): a licence plays offline for its offer's lifetime;
// after that the device plays it again only with a fresh statement, from an escrow of
// the offer, that the device is not revoked. The node carries the device's signed
// request to the escrows in the offer's order and hands back the first statement.
import { peerIdFromString } from '@libp2p/peer-id'
import { requestRenewal } from '../../protocols/escrow/renew.ts'
import { KeyfairError } from '../../protocols/errors.ts'
import type { LicenceInfo } from '../../device/interface.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { DeviceClient } from '../device/client.ts'
import type { AbortOptions, Logger } from '@libp2p/interface'

/** an escrow that does not answer in this time hands the renewal to the next one */
const RENEW_TIMEOUT_MS = 10_000

/** Codes with which an escrow refuses the device itself: another escrow would say the same */
const REFUSALS_OF_THE_DEVICE = new Set(['ERR_CERT_REVOKED', 'ERR_CERT_EXPIRED', 'ERR_CERT_UNTRUSTED', 'ERR_BAD_CERT'])

export class RenewalUnavailableError extends KeyfairError {
  static readonly code = 'ERR_RENEWAL_UNAVAILABLE'
  constructor (message: string) {
    super(message, RenewalUnavailableError.code)
  }
}

/** An escrow refused to vouch for this device; `code` is the escrow's own */
export class RenewalRefusedError extends KeyfairError {
  constructor (escrow: string, code: string, reason: string) {
    super(`renewal refused by escrow ${escrow}: ${reason}`, code)
  }
}

export interface RenewalResult extends LicenceInfo {
  /** the escrow whose statement renewed it */
  escrow: string
  /** escrows that could not answer before it, and why */
  unavailable: Array<{ escrow: string, reason: string }>
}

export interface LicenceRenewalInit {
  streams: StreamOpener
  device: () => DeviceClient
  log: Logger
}

export class LicenceRenewal {
  private readonly init: LicenceRenewalInit

  constructor (init: LicenceRenewalInit) {
    this.init = init
  }

  async renew (content: string, options: AbortOptions = {}): Promise<RenewalResult> {
    const device = this.init.device()
    const { request, escrows } = await device.renewalRequest({ content })
    const unavailable: RenewalResult['unavailable'] = []
    for (const escrow of escrows) {
      options.signal?.throwIfAborted()
      let renewal: Uint8Array
      try {
        const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(RENEW_TIMEOUT_MS)]) : AbortSignal.timeout(RENEW_TIMEOUT_MS)
        renewal = await requestRenewal({ connectionManager: this.init.streams }, peerIdFromString(escrow), request, { signal })
      } catch (err: any) {
        const code = String(err.code ?? err.name ?? 'ERR')
        if (REFUSALS_OF_THE_DEVICE.has(code)) throw new RenewalRefusedError(escrow, code, String(err.message))
        this.init.log('renewal: escrow %s unavailable: %s', escrow, code)
        unavailable.push({ escrow, reason: `${code}: ${String(err.message)}` })
        continue
      }
      const info = await device.renew({ content, renewal })
      this.init.log('licence of %s renewed by escrow %s', content, escrow)
      return { ...info, escrow, unavailable }
    }
    throw new RenewalUnavailableError(`no escrow of the offer answered (${unavailable.map(u => `${u.escrow}: ${u.reason}`).join('; ')})`)
  }
}
