import { Buyer } from '../buyer/buyer.ts'
import { Role } from './role.ts'
import type { RoleComponents } from './role.ts'

/** Discovers, downloads and buys through its sealed device; serves only what it chooses to seed. */
export class BuyerRole extends Role {
  readonly name = 'buyer'
  readonly buyer: Buyer

  constructor (components: RoleComponents) {
    super(components, 'buyer')
    this.buyer = new Buyer({
      peerId: components.peerId.toString(),
      market: components.market,
      discovery: components.discovery,
      streams: components.connectionManager,
      device: components.device,
      log: this.log
    })
  }
}
