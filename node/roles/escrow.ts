import { setMaxListeners } from '@libp2p/interface'
import { escrowServiceCid } from '../discovery/keywords.ts'
import { Role } from './role.ts'
import type { RoleComponents } from './role.ts'

export interface EscrowRoleInit {
  /** How often the escrow service record is provided again. */
  advertiseIntervalMs?: number
}

/**
 * Holds payments and answers blind unblind requests. Advertises itself under
 * the well-known escrow service CID so sellers can pick escrows from the DHT.
 */
export class EscrowRole extends Role {
  readonly name = 'escrow'
  private readonly advertiseIntervalMs: number
  private controller?: AbortController
  private timer?: ReturnType<typeof setTimeout>

  constructor (components: RoleComponents, init: EscrowRoleInit = {}) {
    super(components, 'escrow')
    this.advertiseIntervalMs = init.advertiseIntervalMs ?? 6 * 60 * 60 * 1000
  }

  override async start (): Promise<void> {
    await super.start()
    this.controller = new AbortController()
    setMaxListeners(Infinity, this.controller.signal)
  }

  afterStart (): void {
    this.schedule(0)
  }

  override async stop (): Promise<void> {
    this.controller?.abort()
    clearTimeout(this.timer)
    await super.stop()
  }

  /** Provide now; on failure (no DHT peers yet) retry soon, on success at the interval. */
  private schedule (delayMs: number): void {
    this.timer = setTimeout(() => {
      const signal = this.controller?.signal
      if (signal == null || signal.aborted) return
      void this.components.discovery.provide(escrowServiceCid(), { signal }).then(result => {
        this.log(result.ok ? 'advertised escrow service' : 'escrow service not advertised yet: %s', result.error)
        this.schedule(result.ok ? this.advertiseIntervalMs : 2000)
      })
    }, delayMs)
    this.timer.unref()
  }
}
