// A small marketplace in one test process, over real libp2p on loopback: an agency
// node, escrow nodes (enrolled, with their ledgers), a buyer node whose sealed
// device runs in-process (the escrow is what these tests are about), and a seller key.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { KeyStore } from '../../device/store/keystore.ts'
import { SoftDevice } from '../../device/soft-device.ts'
import { initAgency } from '../../node/agency/agency.ts'
import { EscrowFiles } from '../../node/escrow/state.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { AgencyRole } from '../../node/roles/agency.ts'
import { EscrowRole } from '../../node/roles/escrow.ts'
import { FAST_KDF, TEST_PASSPHRASE, testKeys } from './keys.ts'
import type { EscrowSettings } from '../../node/escrow/state.ts'
import type { RoleName } from '../../node/config.ts'
import type { PrivateKey } from '@libp2p/interface'

export const PASSPHRASE = 'escrow world passphrase'

export interface World {
  dir: string
  agency: KeyfairNode
  agencyRole: AgencyRole
  sellerKey: PrivateKey
  seller: string
  startNode: (name: string, roles: RoleName[]) => Promise<KeyfairNode>
  startEscrow: (name: string, settings?: Partial<EscrowSettings>) => Promise<{ node: KeyfairNode, role: EscrowRole, peer: string, n: Uint8Array }>
  /** an enrolled in-process device, unlocked */
  device: (name: string) => Promise<{ device: SoftDevice, store: KeyStore, deviceId: string }>
  stop: () => Promise<void>
}

export async function createWorld (): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-escrow-'))
  const nodes: KeyfairNode[] = []
  const startNode = async (name: string, roles: RoleName[]): Promise<KeyfairNode> => {
    const repo = new Repo(join(dir, name))
    if (!(await repo.exists())) await repo.init()
    const node = new KeyfairNode({ repo, roles, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
    await node.start()
    nodes.push(node)
    return node
  }
  const agencyRepo = new Repo(join(dir, 'agency'))
  await agencyRepo.init()
  await initAgency(agencyRepo.path, { keys: await testKeys(agencyRepo.path), bits: 2048 })
  const agency = await startNode('agency', ['agency'])
  const agencyRole = agency.roles.find(r => r instanceof AgencyRole) as AgencyRole
  const agencyAddr = agency.status().addresses[0]!
  const sellerKey = await generateKeyPair('Ed25519')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')

  return {
    dir,
    agency,
    agencyRole,
    sellerKey,
    seller: peerIdFromPrivateKey(sellerKey).toString(),
    startNode,
    async startEscrow (name, settings = {}) {
      const repo = new Repo(join(dir, name))
      if (!(await repo.exists())) {
        await repo.init()
        await new EscrowFiles(repo.path).init({ keys: await testKeys(repo.path), bits: 2048, settings })
      }
      const node = await startNode(name, ['escrow'])
      const role = node.roles.find(r => r instanceof EscrowRole) as EscrowRole
      if (!role.escrow.ready) {
        const { code } = agencyRole.agency.createEnrollmentCode({ kind: 'escrow', ttlMs: 60_000 })
        await role.enroll(agencyAddr, code, { signal: AbortSignal.timeout(10_000) })
      }
      const info = role.escrow.info()
      return { node, role, peer: info.peer, n: info.n }
    },
    async device (name) {
      const store = new KeyStore(join(dir, `${name}-device`))
      const device = new SoftDevice({ store })
      const { deviceId } = await device.initialise({ passphrase: PASSPHRASE, bits: 2048, kdf: { N: 2 ** 14, r: 8, p: 1 } })
      const csrs = await device.certificateRequests()
      const { code } = agencyRole.agency.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 })
      const enrolled = agencyRole.agency.enroll({ code: code, csrs: { signing: csrs.signing, encryption: csrs.encryption }, remotePeer: agency.status().peerId })
      await device.installCertificates({ signing: enrolled.certificates.signing!, encryption: enrolled.certificates.encryption!, root: enrolled.root })
      return { device, store, deviceId }
    },
    async stop () {
      await Promise.all(nodes.splice(0).reverse().map(async n => n.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  }
}
