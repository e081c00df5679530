import { AgencyRole } from './agency.ts'
import { BuyerRole } from './buyer.ts'
import { EscrowRole } from './escrow.ts'
import { SellerRole } from './seller.ts'
import type { Role, RoleComponents } from './role.ts'
import type { RoleName } from '../config.ts'

export type { Role }
export type { ProtocolService, RoleComponents } from './role.ts'

export function createRole (name: RoleName, components: RoleComponents): Role {
  switch (name) {
    case 'buyer': return new BuyerRole(components)
    case 'seller': return new SellerRole(components)
    case 'escrow': return new EscrowRole(components)
    case 'agency': return new AgencyRole(components)
  }
}
