import { Role } from './role.ts'
import type { RoleComponents } from './role.ts'

/** Publishes and serves offers, content and licences. */
export class SellerRole extends Role {
  readonly name = 'seller'
  constructor (components: RoleComponents) {
    super(components, 'seller')
  }
}
