import { AgencyRole } from './agency.ts'
import { BuyerRole } from './buyer.ts'
import { EscrowRole } from './escrow.ts'
import { SellerRole } from './seller.ts'
import type { Role, RoleComponents, RoleNode } from './role.ts'
import type { RoleName } from '../config.ts'

export type { Role }
export type { ProtocolService, RoleComponents, RoleNode } from './role.ts'

export function createRole (name: RoleName, components: RoleComponents, node: RoleNode): Role {
  switch (name) {
    case 'buyer': return new BuyerRole(components, node)
    case 'seller': return new SellerRole(components, node)
    case 'escrow': return new EscrowRole(components, node)
    case 'agency': return new AgencyRole(components, node)
  }
}
