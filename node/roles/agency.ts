import { Agency } from '../agency/agency.ts'
import { AgencyNotRunningError } from '../agency/errors.ts'
import { CrlService } from '../../protocols/agency/crl.ts'
import { EnrollService } from '../../protocols/agency/enroll.ts'
import { Role } from './role.ts'
import type { AgencyOptions } from '../agency/agency.ts'
import type { RoleComponents } from './role.ts'

export type AgencyRoleInit = Omit<AgencyOptions, 'log' | 'keys'>

/**
 * Certifies devices and escrows and publishes the revocation list. Its state
 * is `<repo>/agency/` (created offline by `keyfair agency init`); starting the
 * role without it fails with ERR_AGENCY_NOT_INITIALISED.
 */
export class AgencyRole extends Role {
  readonly name = 'agency'
  private readonly init: AgencyRoleInit
  private opened?: Agency

  constructor (components: RoleComponents, init: AgencyRoleInit = {}) {
    super(components, 'agency')
    this.init = init
    this.services.push(
      new EnrollService(components, { enroller: { enroll: async request => this.agency.enroll(request) } }),
      new CrlService(components, { source: { currentCrl: async () => this.agency.currentCrl(), root: () => this.agency.rootPem } })
    )
  }

  /** The open agency; only while the role runs. */
  get agency (): Agency {
    if (this.opened == null) throw new AgencyNotRunningError()
    return this.opened
  }

  override async start (): Promise<void> {
    this.opened = await Agency.open(this.components.repo.path, { ...this.init, keys: this.components.keys(), log: this.components.logger.forComponent('keyfair:agency') })
    try {
      await super.start()
    } catch (err) {
      this.opened.close()
      this.opened = undefined
      throw err
    }
    this.log('root %s', this.opened.rootFingerprint)
  }

  override async stop (): Promise<void> {
    await super.stop()
    this.opened?.close()
    this.opened = undefined
  }
}
