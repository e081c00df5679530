import { setMaxListeners } from '@libp2p/interface'
import { Agency } from '../agency/agency.ts'
import { RoleNotRunningError } from '../errors.ts'
import { CrlService } from '../../protocols/agency/crl.ts'
import { EnrollService } from '../../protocols/agency/enroll.ts'
import { Role } from './role.ts'
import type { AgencyOptions } from '../agency/agency.ts'
import type { RoleComponents, RoleNode } from './role.ts'

export type AgencyRoleInit = Omit<AgencyOptions, 'log' | 'onCrlSigned' | 'keys'> & {
  /** How often the current CRL is published again, for nodes that missed it (default 30 s) */
  crlRepublishMs?: number
}

/** The current CRL goes out on the agency's topic this often, so a node that missed one catches up */
export const CRL_REPUBLISH_MS = 30_000

/**
 * Certifies devices and escrows and publishes the revocation list: served on request
 * (agency/crl), and pushed on the agency's pubsub topic as soon as it is signed, then
 * again periodically. Its state is `<repo>/agency/` (created offline by `keyfair agency
 * init`); starting the role without it fails with ERR_AGENCY_NOT_INITIALISED.
 */
export class AgencyRole extends Role {
  readonly name = 'agency'
  private readonly init: AgencyRoleInit
  private readonly crlRepublishMs: number
  private opened?: Agency
  private controller?: AbortController
  private timer?: ReturnType<typeof setTimeout>
  private unfollow?: () => void

  constructor (components: RoleComponents, node: RoleNode, init: AgencyRoleInit = {}) {
    super(components, node, 'agency')
    this.init = init
    this.crlRepublishMs = init.crlRepublishMs ?? CRL_REPUBLISH_MS
    this.services.push(
      new EnrollService(components, { enroller: { enroll: async request => this.agency.enroll(request) } }),
      new CrlService(components, { source: { currentCrl: async () => this.agency.currentCrl(), root: () => this.agency.rootPem } })
    )
  }

  /** The open agency; only while the role runs. */
  get agency (): Agency {
    if (this.opened == null) throw new RoleNotRunningError('agency')
    return this.opened
  }

  override async start (): Promise<void> {
    this.controller = new AbortController()
    setMaxListeners(Infinity, this.controller.signal)
    this.opened = await Agency.open(this.node.repo.path, {
      ...this.init,
      keys: this.node.keys(),
      log: this.components.logger.forComponent('keyfair:agency'),
      onCrlSigned: crl => { this.publishCrl(crl.der, `new CRL ${crl.number}`) }
    })
    try {
      await super.start()
    } catch (err) {
      this.opened.close()
      this.opened = undefined
      throw err
    }
    this.log('root %s', this.opened.rootFingerprint)
  }

  afterStart (): void {
    const agency = this.opened
    if (agency == null) return
    // subscribed too, so this node is part of its topic's mesh (and relays what it hears)
    this.unfollow = this.components.crl.follow(agency.rootPem, () => {})
    const republish = (): void => {
      if (this.controller?.signal.aborted !== false || this.opened == null) return
      try {
        this.publishCrl(this.opened.currentCrl(), 'current CRL')
      } catch (err) {
        this.log.error('could not read the current CRL - %e', err)
      }
      this.timer = setTimeout(republish, this.crlRepublishMs)
      this.timer.unref()
    }
    republish()
  }

  override async stop (): Promise<void> {
    this.controller?.abort()
    clearTimeout(this.timer)
    this.unfollow?.()
    this.unfollow = undefined
    await super.stop()
    this.opened?.close()
    this.opened = undefined
  }

  /** Pushes a signed CRL to the agency's topic; with no subscriber yet it simply reaches no one */
  private publishCrl (der: Uint8Array, what: string): void {
    const agency = this.opened
    if (agency == null || this.controller?.signal.aborted !== false) return
    this.components.crl.publish(agency.rootPem, der).then(peers => {
      this.log('published %s to %d peer(s)', what, peers)
    }, err => {
      this.log.error('could not publish %s - %e', what, err)
    })
  }
}
