// A node that trusts an agency takes the agency's revocation lists from its pubsub topic
// while connected, and fetches one over agency/crl once it has heard none for the maximum
// age: real libp2p nodes over loopback, the agency role in-process.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { logger } from '@libp2p/logger'
import { initAgency } from '../../node/agency/agency.ts'
import { CrlFeed, crlTopic } from '../../node/agency/crl-feed.ts'
import { AgencyTrust } from '../../node/agency/trust.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { Repo } from '../../node/repo.ts'
import { AgencyRole } from '../../node/roles/agency.ts'
import { deviceCsrs, deviceKeys } from '../helpers/pki.ts'
import { canonicalSerial } from '../../device/pki/names.ts'
import type { Agency } from '../../node/agency/agency.ts'
import type { CrlFeedComponents } from '../../node/agency/crl-feed.ts'
import type { StreamOpener } from '../../protocols/toolkit/index.ts'
import type { Libp2p } from '@libp2p/interface'
import type { BaseServices } from '../../node/libp2p.ts'
import { FAST_KDF, TEST_PASSPHRASE, testKeys } from '../helpers/keys.ts'

type Follower = Libp2p<BaseServices & { crl: CrlFeed }>

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

describe('revocation lists: pushed on the topic, fetched after the maximum age', function () {
  this.timeout(60_000)
  let dir: string
  let agencyNode: KeyfairNode
  let agency: Agency
  let agencyAddr: string
  const followers: Follower[] = []
  const trusts: AgencyTrust[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-crl-feed-'))
    const repo = new Repo(join(dir, 'agency'))
    await repo.init()
    await initAgency(repo.path, { keys: await testKeys(repo.path), bits: 2048 })
    // started alone: its first publications reach no one, and must not fail
    agencyNode = new KeyfairNode({ repo, roles: ['agency'], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
    await agencyNode.start()
    const role = agencyNode.roles.find(r => r instanceof AgencyRole)
    assert.ok(role instanceof AgencyRole)
    agency = role.agency
    agencyAddr = agencyNode.status().addresses[0]!
  })

  after(async function () {
    for (const trust of trusts) trust.stop()
    await Promise.all(followers.map(async f => f.stop()))
    await agencyNode?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function follower (name: string, ages: { crlMaxAgeMs?: number, crlCheckMs?: number } = {}): Promise<{ node: Follower, trust: AgencyTrust }> {
    const node: Follower = await createKeyfairLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      services: { crl: (components: CrlFeedComponents) => new CrlFeed(components) }
    })
    await node.start()
    followers.push(node)
    const streams: StreamOpener = {
      openStream: async (peer, protocol, options = {}) => node.dialProtocol(peer, protocol, { signal: options.signal, maxOutboundStreams: options.maxOutboundStreams })
    }
    const repo = join(dir, name)
    await new Repo(repo).init()
    const trust = new AgencyTrust({ repoPath: repo, streams, crl: node.services.crl, log: logger(`test:${name}`), ...ages })
    await trust.start()
    trusts.push(trust)
    await trust.set(agencyAddr, agency.rootPem, { signal: AbortSignal.timeout(10_000) })
    return { node, trust }
  }

  function issueDevice (): { pem: string, serial: string } {
    const issued = agency.issue(deviceCsrs(deviceKeys()).signing, 'device-signing')
    return { pem: issued.pem, serial: issued.serial }
  }

  it('a connected follower takes a new list pushed by the agency within moments', async function () {
    const { node, trust } = await follower('pushed')
    const device = issueDevice()
    assert.equal((await trust.revocationOf([device.pem]))?.revoked, false)
    const topic = crlTopic(agency.rootPem)
    const agencyPubsub = agencyNode.libp2p.services.pubsub
    for (let i = 0; !agencyPubsub.getSubscribers(topic).some(p => p.equals(node.peerId)); i++) {
      assert.ok(i < 500, 'the agency learns of the subscription')
      await sleep(20)
    }
    const started = Date.now()
    const { crlNumber } = agency.revoke(device.serial, 'keyCompromise')
    let state = await trust.revocationOf([device.pem])
    while (state?.revoked !== true) {
      assert.ok(Date.now() - started < 5000, 'pushed within 5 s')
      await sleep(10)
      state = await trust.revocationOf([device.pem])
    }
    process.stdout.write(`      pushed CRL ${crlNumber} taken ${Date.now() - started} ms after the revocation\n`)
    assert.equal(state.crl.number, BigInt(crlNumber))
    assert.equal(state.reason, 'keyCompromise')
    // serials come back canonical: no leading zero digit, as one serial in 16 has
    assert.deepEqual(state.serials, [canonicalSerial(device.serial)])
  })

  it('revokes by a serial whose first byte is below 0x10 (stored with its leading zero)', async function () {
    const csr = deviceCsrs(deviceKeys()).signing
    let issued = agency.issue(csr, 'device-signing')
    for (let i = 0; !issued.serial.startsWith('0'); i++) {
      assert.ok(i < 200, 'one serial in 8 starts with a zero digit')
      issued = agency.issue(csr, 'device-signing')
    }
    for (const spelling of [issued.serial, issued.serial.replace(/^0+/, '').toUpperCase()]) {
      const result = agency.revoke(spelling)
      assert.deepEqual([...result.revoked.map(c => c.serial), ...result.alreadyRevoked], [issued.serial], spelling)
    }
  })

  it('a follower that hears nothing fetches the list once it is older than the maximum age', async function () {
    const maxAge = 3000
    const { node, trust } = await follower('fallback', { crlMaxAgeMs: maxAge, crlCheckMs: 100 })
    const heard = Date.now()
    // cut off from the agency: no push can reach it
    await node.hangUp(agencyNode.libp2p.peerId)
    const device = issueDevice()
    agency.revoke(device.serial, 'affiliationChanged')
    await sleep(1000)
    assert.ok(Date.now() - heard < maxAge - 500, 'still within the maximum age')
    assert.equal((await trust.revocationOf([device.pem]))?.revoked, false, 'nothing pushed while disconnected')
    let state = await trust.revocationOf([device.pem])
    while (state?.revoked !== true) {
      assert.ok(Date.now() - heard < maxAge + 3000, 'fetched soon after the maximum age')
      await sleep(50)
      state = await trust.revocationOf([device.pem])
    }
    const after = Date.now() - heard
    assert.ok(after >= maxAge, `fetched at ${after} ms, not before the maximum age`)
    assert.equal(state.reason, 'affiliationChanged')
  })
})
