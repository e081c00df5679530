import { Buyer } from '../buyer/buyer.ts'
import { Role } from './role.ts'
import type { RoleComponents, RoleNode } from './role.ts'

/** Discovers, downloads and buys through its sealed device; serves only what it chooses to seed. */
export class BuyerRole extends Role {
  readonly name = 'buyer'
  readonly buyer: Buyer

  constructor (components: RoleComponents, node: RoleNode) {
    super(components, node, 'buyer')
    this.buyer = new Buyer({
      peerId: components.peerId.toString(),
      market: components.market,
      discovery: components.discovery,
      streams: components.connectionManager,
      device: node.device,
      log: this.log,
      // read at each buy, so `keyfair config set buyer.inflightBytes` applies without a restart
      inflightBytes: async () => (await node.repo.readConfig()).buyer?.inflightBytes
    })
  }
}
