import { Role } from './role.ts'
import type { RoleComponents } from './role.ts'

/** Certifies devices and escrows; publishes the revocation list. */
export class AgencyRole extends Role {
  readonly name = 'agency'
  constructor (components: RoleComponents) {
    super(components, 'agency')
  }
}
