// A star swarm of real node processes to buy from: an agency, a 1-of-1 escrow enrolled with
// it, a seller that trusts it, and buyers (specs of the caller's) each with an enrolled device
// and 1000 on deposit at the escrow.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Swarm } from '../../scripts/swarm.ts'
import { FAST_KDF } from './keys.ts'
import { swarmCli } from './swarm-cli.ts'
import type { SwarmNode, SwarmNodeSpec } from '../../scripts/swarm.ts'

export interface MarketSwarm {
  swarm: Swarm
  agency: SwarmNode
  escrow: SwarmNode
  seller: SwarmNode
  /** in the order of the specs given */
  buyers: SwarmNode[]
  /** publishes `file` from the seller, 1-of-1 through the escrow at a price of 10; its offer id */
  publish: (file: string, title: string) => Promise<string>
}

export async function startMarketSwarm (passphrase: string, buyers: Array<Omit<SwarmNodeSpec, 'roles'>>): Promise<MarketSwarm> {
  const swarm = await Swarm.start({
    topology: 'star',
    env: { KEYFAIR_PASSPHRASE: passphrase, KEYFAIR_KDF_N: String(FAST_KDF.N) },
    nodes: [
      { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
      { roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048']] },
      { roles: ['seller'] },
      ...buyers.map(spec => ({ ...spec, roles: ['buyer'] }))
    ]
  })
  const cli = swarmCli(passphrase)
  const [agency, escrow, seller, ...buyerNodes] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, ...SwarmNode[]]
  const agencyAddr = agency.addresses[0]!
  const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
  await cli(escrow, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
  await cli(seller, 'trust', '--agency', agencyAddr)
  for (const buyer of buyerNodes) {
    await cli(buyer, 'device', 'init', '--bits', '2048')
    const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
    await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)
    await cli(escrow, 'escrow', 'deposit', buyer.peerId, '1000')
  }
  const publish = async (file: string, title: string): Promise<string> =>
    (await cli(seller, 'publish', file, '--title', title, '--tags', 'piano', '--price', '10', '--escrows', '1-of-1', '--escrow', escrow.addresses[0]!)).offer
  return { swarm, agency, escrow, seller, buyers: buyerNodes, publish }
}

/** SHA-256 of a file, hex: a played output against its source */
export async function fileSha256 (file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex')
}
