import { Role } from './role.ts'
import type { RoleComponents } from './role.ts'

/** Discovers, downloads and buys; dials out, serves nothing until it re-seeds. */
export class BuyerRole extends Role {
  readonly name = 'buyer'
  constructor (components: RoleComponents) {
    super(components, 'buyer')
  }
}
