import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { TrustStore, createCsr, deviceIdOf } from '../../device/pki/index.ts'
import { initAgency } from '../../node/agency/agency.ts'
import { enrollWithAgency, fetchCrl } from '../../node/agency/client.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { AgencyRole } from '../../node/roles/agency.ts'
import { CRL_LIMITS, CRL_PROTOCOL, requestCrl } from '../../protocols/agency/crl.ts'
import { ENROLL_LIMITS, ENROLL_PROTOCOL } from '../../protocols/agency/enroll.ts'
import { FrameKind, FrameStream, encodeMessage } from '../../protocols/toolkit/index.ts'
import { deviceCsrs, deviceKeys, escrowCsr, rsaPair, tamperPem } from '../helpers/pki.ts'
import { waitFor } from '../helpers/nodes.ts'
import { FAST_KDF, TEST_PASSPHRASE, testKeys } from '../helpers/keys.ts'
import type { Agency, EnrollmentKind } from '../../node/agency/agency.ts'
import type { AgencyClientComponents } from '../../node/agency/client.ts'
import type { RoleName } from '../../node/config.ts'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'

describe('agency over libp2p: /keyfair/agency/enroll and /keyfair/agency/crl', function () {
  let dir: string
  const running: KeyfairNode[] = []
  let agencyNode: KeyfairNode
  let agency: Agency
  let agencyAddr: Multiaddr
  let client: KeyfairNode
  let components: AgencyClientComponents

  async function startNode (name: string, roles: RoleName[], withAgency = false): Promise<KeyfairNode> {
    const repo = new Repo(join(dir, name))
    await repo.init()
    if (withAgency) await initAgency(repo.path, { keys: await testKeys(repo.path), bits: 2048 })
    const node = new KeyfairNode({ repo, roles, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
    await node.start()
    running.push(node)
    return node
  }

  function agencyOf (node: KeyfairNode): Agency {
    const role = node.roles.find(r => r instanceof AgencyRole)
    assert.ok(role instanceof AgencyRole)
    return role.agency
  }

  function code (kind: EnrollmentKind = 'device', ttlMs = 60_000): string {
    return agency.createEnrollmentCode({ kind, ttlMs }).code
  }

  /** Runs a refused request and checks the agency's database did not change. */
  async function refused (attempt: Promise<unknown>, expected: string, message?: RegExp): Promise<void> {
    const before = agency.counts()
    await assert.rejects(attempt, (err: any) => {
      assert.equal(err.code, expected, err.message)
      if (message != null) assert.match(err.message, message)
      return true
    })
    assert.deepEqual(agency.counts(), before, `a refusal (${expected}) writes nothing`)
  }

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-agency-'))
    agencyNode = await startNode('agency', ['agency'], true)
    agency = agencyOf(agencyNode)
    agencyAddr = multiaddr(agencyNode.status().addresses[0]!)
    client = await startNode('client', ['buyer'])
    components = { connectionManager: (client.libp2p as any).components.connectionManager }
  })

  after(async function () {
    await Promise.all(running.splice(0).map(async n => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  it('serves both protocols and a device enrolls; the code then works no more', async function () {
    assert.ok(agencyNode.status().protocols.includes(ENROLL_PROTOCOL))
    assert.ok(agencyNode.status().protocols.includes(CRL_PROTOCOL))
    const keys = deviceKeys()
    const once = code()
    const enrolled = await enrollWithAgency(components, agencyAddr, { code: once, csrs: deviceCsrs(keys) }, { rootPem: agency.rootPem })
    assert.equal(enrolled.root, agency.rootPem)
    const trust = new TrustStore(enrolled.root)
    await fetchCrl(components, agencyAddr, trust)
    const signing = trust.verify(enrolled.certificates.signing!, { purpose: 'device-signing' })
    assert.equal(signing.subjectCommonName, keys.deviceId)
    assert.ok(trust.verify(enrolled.certificates.encryption!, { purpose: 'device-encryption' }).publicKey.equals(keys.encryption.publicKey))
    const record = agency.certificates().filter(c => c.subject === keys.deviceId)
    assert.equal(record.length, 2)

    await refused(enrollWithAgency(components, agencyAddr, { code: once, csrs: deviceCsrs(deviceKeys()) }), 'ERR_ENROLL_CODE_USED')
  })

  it('one code, two concurrent enrollments: exactly one is certified', async function () {
    const shared = code()
    const before = agency.counts()
    const results = await Promise.allSettled([deviceKeys(), deviceKeys()].map(async keys =>
      enrollWithAgency(components, agencyAddr, { code: shared, csrs: deviceCsrs(keys) })))
    assert.equal(results.filter(r => r.status === 'fulfilled').length, 1)
    const loser = results.find(r => r.status === 'rejected')
    assert.equal((loser as PromiseRejectedResult).reason.code, 'ERR_ENROLL_CODE_USED')
    assert.equal(agency.counts().certificates, before.certificates + 2)
  })

  it('refuses unknown and expired codes', async function () {
    const csrs = deviceCsrs(deviceKeys())
    await refused(enrollWithAgency(components, agencyAddr, { code: 'AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH', csrs }), 'ERR_ENROLL_CODE_UNKNOWN')
    await refused(enrollWithAgency(components, agencyAddr, { code: 'not a code', csrs }), 'ERR_ENROLL_CODE_UNKNOWN')
    const short = code('device', 1)
    await new Promise(resolve => setTimeout(resolve, 20))
    await refused(enrollWithAgency(components, agencyAddr, { code: short, csrs }), 'ERR_ENROLL_CODE_EXPIRED')
  })

  it('a code is for one kind: device codes refuse escrows and the other way round, and stay usable', async function () {
    const peerId = client.status().peerId
    const forDevice = code('device')
    const forEscrow = code('escrow')
    await refused(enrollWithAgency(components, agencyAddr, { code: forDevice, csrs: { escrow: escrowCsr(rsaPair(), peerId) } }), 'ERR_ENROLL_CODE_KIND')
    const keys = deviceKeys()
    await refused(enrollWithAgency(components, agencyAddr, { code: forEscrow, csrs: deviceCsrs(keys) }), 'ERR_ENROLL_CODE_KIND')
    assert.ok((await enrollWithAgency(components, agencyAddr, { code: forDevice, csrs: deviceCsrs(keys) })).certificates.signing)
    const escrow = await enrollWithAgency(components, agencyAddr, { code: forEscrow, csrs: { escrow: escrowCsr(rsaPair(), peerId) } })
    const trust = new TrustStore(agency.rootPem, { requireCrl: false })
    assert.equal(trust.verify(escrow.certificates.escrow!, { purpose: 'escrow' }).subjectCommonName, peerId)
  })

  it('refuses bad CSRs with ERR_BAD_CSR, writing nothing, and the code still works afterwards', async function () {
    const keys = deviceKeys()
    const good = deviceCsrs(keys)
    const weak = rsaPair(1024)
    const weakId = deviceIdOf(weak.publicKey)
    const stranger = deviceKeys()
    const subject = { commonName: keys.deviceId, organizationalUnit: 'keyfair device' }
    const once = code()
    const bad: Array<[RegExp, { signing?: string, encryption?: string }]> = [
      [/signature does not verify/, { ...good, signing: tamperPem(good.signing) }],
      [/signing CSR: CN must be the device id/, { ...good, signing: createCsr(keys.signing.privateKey, keys.signing.publicKey, { ...subject, commonName: stranger.deviceId }) }],
      [/encryption CSR: CN must be the device id/, { ...good, encryption: deviceCsrs(stranger).encryption }],
      [/1024 bits/, deviceCsrs({ signing: weak, encryption: rsaPair(1024), deviceId: weakId })],
      [/keys of a device must differ/, { signing: good.signing, encryption: good.signing }],
      [/OU must be 'keyfair device'/, { ...good, encryption: createCsr(keys.encryption.privateKey, keys.encryption.publicKey, { ...subject, organizationalUnit: 'keyfair escrow' }) }],
      [/needs a signing CSR and an encryption CSR/, { signing: good.signing }],
      [/not one PEM/, { ...good, signing: 'hello' }]
    ]
    for (const [why, csrs] of bad) {
      await refused(enrollWithAgency(components, agencyAddr, { code: once, csrs }), 'ERR_BAD_CSR', why)
    }
    const enrolled = await enrollWithAgency(components, agencyAddr, { code: once, csrs: good })
    assert.ok(enrolled.certificates.signing)
  })

  it('refuses an escrow CSR that does not name the calling peer', async function () {
    const forEscrow = code('escrow')
    const someoneElse = agencyNode.status().peerId
    await refused(enrollWithAgency(components, agencyAddr, { code: forEscrow, csrs: { escrow: escrowCsr(rsaPair(), someoneElse) } }), 'ERR_BAD_CSR', /CN must be the peer id of the enrolling node/)
    // the same code, naming the caller, works
    const peerId = client.status().peerId
    const escrow = await enrollWithAgency(components, agencyAddr, { code: forEscrow, csrs: { escrow: escrowCsr(rsaPair(), peerId) } })
    assert.equal(new TrustStore(agency.rootPem, { requireCrl: false }).verify(escrow.certificates.escrow!, { purpose: 'escrow' }).subjectCommonName, peerId)
  })

  it('a revoked device cannot enroll again; the CRL it gets over the wire refuses it and accepts others', async function () {
    const keys = deviceKeys()
    const revokedDevice = await enrollWithAgency(components, agencyAddr, { code: code(), csrs: deviceCsrs(keys) })
    const honest = await enrollWithAgency(components, agencyAddr, { code: code(), csrs: deviceCsrs(deviceKeys()) })
    const trust = new TrustStore(agency.rootPem)
    const first = await fetchCrl(components, agencyAddr, trust)
    assert.ok(trust.verify(revokedDevice.certificates.signing!, { purpose: 'device-signing' }))

    agency.revoke(keys.deviceId, 'keyCompromise')
    await refused(enrollWithAgency(components, agencyAddr, { code: code(), csrs: deviceCsrs(keys) }), 'ERR_DEVICE_REVOKED')
    // a new encryption key does not help: the device id is revoked
    await refused(enrollWithAgency(components, agencyAddr, { code: code(), csrs: deviceCsrs({ ...keys, encryption: rsaPair() }) }), 'ERR_DEVICE_REVOKED')

    const second = await fetchCrl(components, agencyAddr, trust)
    assert.ok(second.number > first.number)
    assert.throws(() => trust.verify(revokedDevice.certificates.signing!, { purpose: 'device-signing' }), { code: 'ERR_CERT_REVOKED' })
    assert.throws(() => trust.verify(revokedDevice.certificates.encryption!, { purpose: 'device-encryption' }), { code: 'ERR_CERT_REVOKED' })
    assert.equal(trust.verify(honest.certificates.signing!, { purpose: 'device-signing' }).purpose, 'device-signing')
  })

  it('a CRL fetched from another agency is refused as ERR_CRL_INVALID', async function () {
    const otherAgency = await startNode('other-agency', ['agency'], true)
    const trust = new TrustStore(agency.rootPem)
    await assert.rejects(fetchCrl(components, multiaddr(otherAgency.status().addresses[0]!), trust), { code: 'ERR_CRL_INVALID' })
    assert.equal(trust.crl, undefined)
    // and enrolling there while trusting this agency's root is refused too
    const other = agencyOf(otherAgency)
    const otherCode = other.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 }).code
    await assert.rejects(enrollWithAgency(components, multiaddr(otherAgency.status().addresses[0]!), { code: otherCode, csrs: deviceCsrs(deviceKeys()) }, { rootPem: agency.rootPem }), { code: 'ERR_CERT_UNTRUSTED' })
  })

  describe('malformed and oversized frames', function () {
    const libp2p = (): any => client.libp2p

    async function open (protocol: string): Promise<Stream> {
      return libp2p().dialProtocol(agencyAddr, protocol, { signal: AbortSignal.timeout(5000) })
    }

    async function waitReset (stream: Stream): Promise<void> {
      await waitFor(() => stream.status !== 'open', 5000, 'the agency to end the stream')
      assert.equal(stream.status, 'reset')
    }

    it('resets oversized, undecodable and unknown-kind frames on both protocols and keeps serving', async function () {
      const before = agency.counts()
      for (const [protocol, limits] of [[ENROLL_PROTOCOL, ENROLL_LIMITS], [CRL_PROTOCOL, CRL_LIMITS]] as const) {
        const oversized = await open(protocol)
        oversized.send(lp.encode.single(new Uint8Array(limits.maxFrameBytes + 1)))
        await waitReset(oversized)
        for (const body of [Uint8Array.of(FrameKind.MESSAGE, 0xff, 0xff, 0x00), Uint8Array.of(9, 1, 2, 3)]) {
          const stream = await open(protocol)
          stream.send(lp.encode.single(body))
          await waitReset(stream)
        }
      }
      assert.deepEqual(agency.counts(), before)
      assert.ok((await requestCrl(components, agencyAddr)).byteLength > 0)
      assert.ok((await enrollWithAgency(components, agencyAddr, { code: code(), csrs: deviceCsrs(deviceKeys()) })).certificates.signing)
    })

    it('answers well-formed but invalid requests with ERR_BAD_MESSAGE', async function () {
      const valid = code()
      const before = agency.counts()
      const ask = async (protocol: string, message: unknown): Promise<unknown> => {
        const frames = new FrameStream(await open(protocol), ENROLL_LIMITS)
        await frames.writeMessage(message)
        try {
          return await frames.readMessage()
        } finally {
          frames.stream.abort(new Error('done'))
        }
      }
      for (const message of [
        { v: 2, code: valid, csrs: { signing: 'x' } },
        { v: 1, code: valid, csrs: {} },
        { v: 1, code: valid, csrs: { master: 'x' } },
        { v: 1, code: 42, csrs: { signing: 'x' } },
        { v: 1, code: valid, csrs: { signing: 'x'.repeat(20_000) } },
        [1, 2, 3]
      ]) {
        await assert.rejects(ask(ENROLL_PROTOCOL, message), { code: 'ERR_BAD_MESSAGE' }, JSON.stringify(message).slice(0, 80))
      }
      await assert.rejects(ask(CRL_PROTOCOL, { v: 7 }), { code: 'ERR_BAD_MESSAGE' })
      assert.deepEqual(agency.counts(), before)
    })

    it('ends a stream whose request is truncated by a close, and keeps serving', async function () {
      const before = agency.counts()
      const request = lp.encode.single(encodeMessage({ v: 1, code: code(), csrs: deviceCsrs(deviceKeys()) })).subarray()
      const truncated = await open(ENROLL_PROTOCOL)
      truncated.send(request.subarray(0, Math.floor(request.byteLength / 2)))
      await truncated.close()
      await waitFor(() => truncated.status !== 'open', 5000, 'the truncated stream to end')
      assert.notEqual(truncated.readStatus, 'readable')
      assert.deepEqual(agency.counts(), { ...before, codes: before.codes + 1 }, 'only the code was created; nothing issued')
      assert.ok((await requestCrl(components, agencyAddr)).byteLength > 0)
    })
  })

  it('the agency role on a repo without `agency init` refuses to start, leaving the repo unlocked', async function () {
    const repo = new Repo(join(dir, 'bare'))
    await repo.init()
    const node = new KeyfairNode({ repo, roles: ['agency'], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
    await assert.rejects(node.start(), { code: 'ERR_AGENCY_NOT_INITIALISED' })
    await initAgency(repo.path, { keys: await testKeys(repo.path), bits: 2048 })
    const retry = new KeyfairNode({ repo, roles: ['agency'], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
    await retry.start()
    running.push(retry)
    assert.ok(retry.status().protocols.includes(ENROLL_PROTOCOL))
  })
})
