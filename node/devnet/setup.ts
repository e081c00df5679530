// A devnet's first start: the steps a user would run, in order, through the CLI. The
// agency certifies each escrow and each buyer's sealed device with one-time codes, the
// sellers trust the agency, every escrow credits every buyer, and each seller publishes
// a generated sample work over all the escrows.
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { KeyfairCli } from './cli-runner.ts'
import type { DevnetShape } from './shape.ts'
import type { SampleWork } from './state.ts'

/** A node of the devnet as the setup needs it */
export interface DevnetMember {
  name: string
  repo: string
  peerId: string
  /** its first address, /p2p/<peer id> included */
  address: string
}

export interface DevnetMembers {
  agency: DevnetMember
  escrows: DevnetMember[]
  sellers: DevnetMember[]
  buyers: DevnetMember[]
}

/** What each escrow credits each buyer, in minor units */
export const BUYER_CREDIT = 10_000
export const SAMPLE_PRICE = 100
export const SAMPLE_BYTES = 1024 * 1024 + 4321

export async function setUpDevnet (dir: string, shape: DevnetShape, m: DevnetMembers, cli: KeyfairCli, progress: (line: string) => void): Promise<SampleWork[]> {
  const agencyAddress = m.agency.address
  const code = async (kind: 'escrow' | 'device'): Promise<string> => (await cli<{ code: string }>(m.agency.repo, ['agency', 'enroll-code', '--for', kind])).code
  for (const escrow of m.escrows) {
    await cli(escrow.repo, ['escrow', 'enroll', '--agency', agencyAddress, '--code', await code('escrow')])
    progress(`the agency certified ${escrow.name}`)
  }
  for (const seller of m.sellers) {
    await cli(seller.repo, ['trust', '--agency', agencyAddress])
    progress(`${seller.name} trusts the agency`)
  }
  for (const buyer of m.buyers) {
    await cli(buyer.repo, ['device', 'init'])
    await cli(buyer.repo, ['device', 'enroll', '--agency', agencyAddress, '--code', await code('device')])
    progress(`${buyer.name}'s sealed device made its keys and was certified`)
  }
  for (const escrow of m.escrows) {
    for (const buyer of m.buyers) await cli(escrow.repo, ['escrow', 'deposit', buyer.peerId, String(BUYER_CREDIT)])
  }
  if (m.buyers.length > 0) progress(`each escrow credited each buyer ${BUYER_CREDIT}`)
  const works: SampleWork[] = []
  for (const [i, seller] of m.sellers.entries()) {
    works.push(await publishSample(dir, i + 1, seller, shape, m.escrows, cli))
    progress(`${seller.name} published '${works[i]!.title}'`)
  }
  return works
}

async function publishSample (dir: string, n: number, seller: DevnetMember, shape: DevnetShape, escrows: DevnetMember[], cli: KeyfairCli): Promise<SampleWork> {
  const samples = join(dir, 'samples')
  await mkdir(samples, { recursive: true })
  const file = join(samples, `sample-${n}.bin`)
  await writeFile(file, randomBytes(SAMPLE_BYTES))
  const title = `Devnet sample ${n}`
  const published = await cli<{ content: string, offer: string }>(seller.repo, [
    'publish', file, '--title', title, '--tags', 'devnet,sample', '--price', String(SAMPLE_PRICE),
    '--escrows', `${shape.threshold}-of-${shape.escrows}`, ...escrows.flatMap(e => ['--escrow', e.peerId])
  ])
  return { seller: seller.name, title, content: published.content, offer: published.offer, file }
}
