import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TrustStore, createCsr, deviceIdOf, encodePem, inspectCsr, parseCrl } from '../../device/pki/index.ts'
import { Agency, agencyPaths, initAgency } from '../../node/agency/agency.ts'
import { NodeKeyStore } from '../../node/keys/keystore.ts'
import { Repo } from '../../node/repo.ts'
import { testKeys } from '../helpers/keys.ts'
import { deviceCsrs, deviceKeys, escrowCsr, openssl, rsaPair, tamperPem } from '../helpers/pki.ts'
import type { DeviceKeys } from '../helpers/pki.ts'

const DAY = 24 * 60 * 60 * 1000

async function newAgency (path: string, options: Omit<Parameters<typeof Agency.open>[1], 'keys'> = {}): Promise<Agency> {
  await new Repo(path).init()
  const keys = await testKeys(path)
  await initAgency(path, { keys, bits: 2048 })
  return Agency.open(path, { ...options, keys })
}

describe('agency PKI: certificates and CRLs against OpenSSL and the TrustStore', function () {
  let dir: string
  let agency: Agency
  let other: Agency
  let device: DeviceKeys
  let certs: { signing: string, encryption: string }
  let escrow: { pem: string, peerId: string }
  const file = (name: string): string => join(dir, name)

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-pki-'))
    agency = await newAgency(file('agency'))
    other = await newAgency(file('other'))
    device = deviceKeys()
    const { code } = agency.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 })
    const result = agency.enroll({ code, csrs: deviceCsrs(device), remotePeer: 'test-peer' })
    certs = { signing: result.certificates.signing!, encryption: result.certificates.encryption! }
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    escrow = { pem: agency.issue(escrowCsr(rsaPair(), peerId), 'escrow').pem, peerId }
    await writeFile(file('root.pem'), agency.rootPem)
    await writeFile(file('signing.pem'), certs.signing)
    await writeFile(file('encryption.pem'), certs.encryption)
    await writeFile(file('escrow.pem'), escrow.pem)
  })

  after(async function () {
    agency?.close()
    other?.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function writeCrl (name: string, der: Uint8Array): Promise<string> {
    await writeFile(file(`${name}.der`), der)
    await writeFile(file(`${name}.pem`), encodePem(der, 'X509 CRL'))
    return file(`${name}.pem`)
  }

  it('openssl verifies the device and escrow certificates, also with -crl_check, and the TrustStore agrees', async function () {
    const crl = await writeCrl('crl-before', agency.currentCrl())
    for (const cert of ['signing.pem', 'encryption.pem', 'escrow.pem']) {
      const plain = await openssl(['verify', '-CAfile', file('root.pem'), file(cert)])
      assert.equal(plain.code, 0, plain.stderr)
      assert.match(plain.stdout, /: OK\n$/)
      const checked = await openssl(['verify', '-crl_check', '-CAfile', file('root.pem'), '-CRLfile', crl, file(cert)])
      assert.equal(checked.code, 0, checked.stdout + checked.stderr)
    }
    const trust = new TrustStore(agency.rootPem)
    trust.setCrl(agency.currentCrl())
    const signing = trust.verify(certs.signing, { purpose: 'device-signing' })
    assert.equal(signing.subjectCommonName, device.deviceId)
    assert.ok(signing.publicKey.equals(device.signing.publicKey))
    assert.ok(trust.verify(certs.encryption, { purpose: 'device-encryption' }).publicKey.equals(device.encryption.publicKey))
    assert.equal(trust.verify(escrow.pem, { purpose: 'escrow' }).subjectCommonName, escrow.peerId)
    assert.equal(signing.serialNumber, new X509Certificate(certs.signing).serialNumber.toLowerCase().replace(/^0+/, ''))
  })

  it('issues the key usage of each purpose, critical, on a CA:false certificate with key identifiers', async function () {
    const text = async (name: string): Promise<string> => (await openssl(['x509', '-in', file(name), '-noout', '-text'])).stdout
    const signing = await text('signing.pem')
    assert.match(signing, /Key Usage: critical\n\s+Digital Signature\n/)
    assert.match(signing, /Basic Constraints: critical\n\s+CA:FALSE/)
    assert.match(signing, /Subject: CN = [0-9a-f]{32}, OU = keyfair device/)
    assert.match(signing, /Authority Key Identifier/)
    assert.match(await text('encryption.pem'), /Key Usage: critical\n\s+Key Encipherment\n/)
    assert.match(await text('escrow.pem'), /Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/)
    const root = await text('root.pem')
    assert.match(root, /Basic Constraints: critical\n\s+CA:TRUE/)
    assert.match(root, /Key Usage: critical\n\s+Certificate Sign, CRL Sign/)
    assert.match(root, /Public-Key: \(2048 bit\)/)
  })

  it('after revoke, openssl -crl_check and the TrustStore both refuse the device, and accept the escrow', async function () {
    const trust = new TrustStore(agency.rootPem)
    const before = trust.setCrl(agency.currentCrl())
    // verified (and cached) before the revocation: the new list must still win
    assert.equal(trust.verify(certs.signing, { purpose: 'device-signing' }).subjectCommonName, device.deviceId)
    const result = agency.revoke(device.deviceId, 'keyCompromise')
    assert.deepEqual(result.revoked.map(c => c.purpose).sort(), ['device-encryption', 'device-signing'])
    assert.equal(BigInt(result.crlNumber), before.number + 1n)

    const der = agency.currentCrl()
    const crl = await writeCrl('crl-after', der)
    for (const cert of ['signing.pem', 'encryption.pem']) {
      const refused = await openssl(['verify', '-crl_check', '-CAfile', file('root.pem'), '-CRLfile', crl, file(cert)])
      assert.notEqual(refused.code, 0)
      assert.match(refused.stdout + refused.stderr, /certificate revoked/)
    }
    const escrowCheck = await openssl(['verify', '-crl_check', '-CAfile', file('root.pem'), '-CRLfile', crl, file('escrow.pem')])
    assert.equal(escrowCheck.code, 0, escrowCheck.stdout + escrowCheck.stderr)

    const listed = await openssl(['crl', '-in', file('crl-after.der'), '-inform', 'DER', '-noout', '-text'])
    assert.equal(listed.code, 0, listed.stderr)
    for (const cert of result.revoked) assert.ok(listed.stdout.includes(`Serial Number: ${cert.serial.toUpperCase()}`), `CRL lists ${cert.serial}`)
    assert.match(listed.stdout, new RegExp(`CRL Number: \\n\\s+${result.crlNumber}\\n`))
    assert.match(listed.stdout, /Key Compromise/)
    const signedBy = await openssl(['crl', '-in', file('crl-after.der'), '-inform', 'DER', '-noout', '-CAfile', file('root.pem')])
    assert.match(signedBy.stdout + signedBy.stderr, /verify OK/)

    trust.setCrl(der)
    assert.throws(() => trust.verify(certs.signing, { purpose: 'device-signing' }), { code: 'ERR_CERT_REVOKED' })
    assert.throws(() => trust.verify(certs.encryption, { purpose: 'device-encryption' }), { code: 'ERR_CERT_REVOKED' })
    assert.equal(trust.verify(escrow.pem, { purpose: 'escrow' }).subjectCommonName, escrow.peerId)
    // an older list replayed does not un-revoke
    assert.equal(trust.setCrl(before.der).number, BigInt(result.crlNumber))
    assert.throws(() => trust.verify(certs.signing, { purpose: 'device-signing' }), { code: 'ERR_CERT_REVOKED' })
    // revoking again changes nothing and does not re-sign
    const again = agency.revoke(device.deviceId)
    assert.deepEqual(again.revoked, [])
    assert.equal(again.alreadyRevoked.length, 2)
    assert.equal(again.crlNumber, result.crlNumber)
  })

  it('refuses a CRL signed by another CA, or tampered with', async function () {
    const trust = new TrustStore(agency.rootPem)
    assert.throws(() => trust.setCrl(other.currentCrl()), { code: 'ERR_CRL_INVALID' })
    const tampered = Uint8Array.from(agency.currentCrl())
    tampered[tampered.length - 10]! ^= 1
    assert.throws(() => trust.setCrl(tampered), { code: 'ERR_CRL_INVALID' })
    assert.throws(() => trust.setCrl(new Uint8Array([0x30, 0x03, 1, 2, 3])), { code: 'ERR_CRL_INVALID' })
    assert.equal(trust.crl, undefined, 'nothing installed')
    // openssl agrees that the other CA's list does not belong to this root
    await writeCrl('crl-other', other.currentCrl())
    const foreign = await openssl(['crl', '-in', file('crl-other.der'), '-inform', 'DER', '-noout', '-CAfile', file('root.pem')])
    assert.match(foreign.stdout + foreign.stderr, /verify failure/)
  })

  it('refuses a certificate from another root, a forged one, and one for another purpose', function () {
    const trust = new TrustStore(agency.rootPem)
    trust.setCrl(agency.currentCrl())
    const stranger = deviceKeys()
    const { code } = other.createEnrollmentCode({ kind: 'device', ttlMs: 60_000 })
    const foreign = other.enroll({ code, csrs: deviceCsrs(stranger), remotePeer: 'p' }).certificates.signing!
    assert.throws(() => trust.verify(foreign, { purpose: 'device-signing' }), { code: 'ERR_CERT_UNTRUSTED' })
    assert.throws(() => trust.verify(tamperPem(escrow.pem), { purpose: 'escrow' }), { code: 'ERR_CERT_UNTRUSTED' })
    assert.throws(() => trust.verify('not a certificate', { purpose: 'escrow' }), { code: 'ERR_BAD_CERT' })
    assert.throws(() => trust.verify(escrow.pem, { purpose: 'device-signing' }), { code: 'ERR_CERT_PURPOSE' })
    assert.throws(() => trust.verify(agency.rootPem, { purpose: 'escrow' }), { code: 'ERR_CERT_PURPOSE' })
    // same unit, other key usage
    assert.throws(() => trust.verify(certs.encryption, { purpose: 'device-signing' }), { code: 'ERR_CERT_PURPOSE' })
    assert.throws(() => trust.verify(certs.signing, { purpose: 'device-encryption' }), { code: 'ERR_CERT_PURPOSE' })
  })

  it('refuses an expired or not yet valid certificate, as openssl -attime does', async function () {
    const trust = new TrustStore(agency.rootPem)
    trust.setCrl(agency.currentCrl())
    const verified = trust.verify(escrow.pem, { purpose: 'escrow' })
    const late = new Date(verified.notAfter.getTime() + 1000)
    assert.throws(() => trust.verify(escrow.pem, { purpose: 'escrow', at: late }), { code: 'ERR_CERT_EXPIRED' })
    assert.throws(() => trust.verify(escrow.pem, { purpose: 'escrow', at: new Date(verified.notBefore.getTime() - 1000) }), { code: 'ERR_CERT_NOT_YET_VALID' })
    const attime = await openssl(['verify', '-attime', String(Math.floor(late.getTime() / 1000)), '-CAfile', file('root.pem'), file('escrow.pem')])
    assert.notEqual(attime.code, 0)
    assert.match(attime.stdout + attime.stderr, /certificate has expired/)
    const inside = new Date(verified.notAfter.getTime() - 1000)
    assert.equal(trust.verify(escrow.pem, { purpose: 'escrow', at: inside }).serialNumber, verified.serialNumber)
  })

  it('requires a current CRL unless told otherwise', function () {
    let now = Date.now()
    const trust = new TrustStore(agency.rootPem, { now: () => now })
    assert.throws(() => trust.verify(escrow.pem, { purpose: 'escrow' }), { code: 'ERR_CRL_STALE' })
    assert.equal(new TrustStore(agency.rootPem, { requireCrl: false }).verify(escrow.pem, { purpose: 'escrow' }).purpose, 'escrow')
    const info = trust.setCrl(agency.currentCrl())
    assert.ok(trust.verify(escrow.pem, { purpose: 'escrow' }))
    now = info.nextUpdate.getTime() + 1
    assert.throws(() => trust.verify(escrow.pem, { purpose: 'escrow' }), { code: 'ERR_CRL_STALE' })
    assert.throws(() => trust.setCrl(info.der), { code: 'ERR_CRL_STALE' })
    now = info.thisUpdate.getTime() - 60 * 60 * 1000
    assert.throws(() => new TrustStore(agency.rootPem, { now: () => now }).setCrl(info.der), { code: 'ERR_CRL_INVALID' }, 'dated in the future')
  })

  it('re-signs the CRL once half its validity has passed, with a higher number', async function () {
    let now = Date.now()
    const clocked = await Agency.open(file('other'), { keys: await testKeys(file('other')), now: () => now, crlValidityMs: DAY })
    try {
      const first = parseCrl(clocked.currentCrl())
      now += DAY / 2 - 60_000
      assert.equal(parseCrl(clocked.currentCrl()).number, first.number, 'still fresh')
      now += 120_000
      const second = parseCrl(clocked.currentCrl())
      assert.equal(second.number, first.number + 1n)
      assert.equal(second.nextUpdate.getTime() - second.thisUpdate.getTime(), DAY)
    } finally {
      clocked.close()
    }
  })

  it('the agency keeps its CA key sealed, refuses a key store others can read, and a second init', async function () {
    const path = file('loose')
    await new Repo(path).init()
    const keys = await testKeys(path)
    await assert.rejects(Agency.open(path, { keys }), { code: 'ERR_AGENCY_NOT_INITIALISED' })
    await initAgency(path, { keys, bits: 2048 })
    await assert.rejects(readFile(agencyPaths(path).key), { code: 'ENOENT' }, 'no plaintext CA key')
    await assert.rejects(initAgency(path, { keys, bits: 2048 }), { code: 'ERR_AGENCY_EXISTS' })
    const store = new NodeKeyStore(join(path, 'keys'))
    await chmod(store.file, 0o644)
    await assert.rejects(store.unlock('keyfair test repo passphrase'), { code: 'ERR_INSECURE_FILE' })
    await chmod(store.file, 0o600)
    await assert.rejects(store.unlock('not the passphrase'), { code: 'ERR_WRONG_PASSPHRASE' })
    await assert.rejects(initAgency(file('no-repo'), { keys, bits: 2048 }), { code: 'ERR_REPO_NOT_INITIALISED' })
  })

  it('CSRs made by createCsr and by openssl both pass inspection; a mismatched key pair is refused', async function () {
    const pair = rsaPair()
    const id = deviceIdOf(pair.publicKey)
    assert.equal(inspectCsr(createCsr(pair.privateKey, pair.publicKey, { commonName: id, organizationalUnit: 'keyfair device' })).commonName, id)
    assert.throws(() => createCsr(pair.privateKey, rsaPair().publicKey, { commonName: id, organizationalUnit: 'x' }), { code: 'ERR_INVALID_ARG' })
    const made = await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('o.key'), '-subj', '/CN=abc/OU=keyfair escrow', '-out', file('o.csr')])
    assert.equal(made.code, 0, made.stderr)
    const info = inspectCsr(await readFile(file('o.csr'), 'utf8'))
    assert.deepEqual([info.commonName, info.organizationalUnit, info.bits], ['abc', 'keyfair escrow', 2048])
  })
})
