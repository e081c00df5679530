import { LicenseService } from '../../protocols/market/license.ts'
import { Seller } from '../seller/seller.ts'
import { Role } from './role.ts'
import type { RoleComponents, RoleNode } from './role.ts'

/** Publishes works and serves their offers, ciphertext and device-bound licences. */
export class SellerRole extends Role {
  readonly name = 'seller'
  readonly seller: Seller

  constructor (components: RoleComponents, node: RoleNode) {
    super(components, node, 'seller')
    this.seller = new Seller({
      repoPath: node.repo.path,
      privateKey: components.privateKey,
      peerId: components.peerId.toString(),
      market: components.market,
      discovery: components.discovery,
      streams: components.connectionManager,
      keys: node.keys,
      log: this.log
    })
    this.services.push(new LicenseService(components, { licensor: { licence: async request => this.seller.licence(request, { signal: AbortSignal.timeout(10_000) }) } }))
  }
}
