// The sealed device through the CLI of real node processes: init, enroll with an
// agency by one-time code, unlock at start, and refusals with clear codes.
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import { openssl } from '../helpers/pki.ts'
import type { NodeProcess } from '../helpers/cli.ts'

describe('keyfair device CLI on a buyer node process', function () {
  this.timeout(120_000)
  let dir: string
  const nodes: NodeProcess[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-device-cli-'))
  })

  after(async function () {
    await Promise.all(nodes.splice(0).map(async n => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  async function start (repo: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
    const node = await startNodeProcess(['--repo', repo, 'start', ...args], env)
    nodes.push(node)
    return node
  }

  async function json (args: string[], env: NodeJS.ProcessEnv = {}): Promise<any> {
    const result = await runCli(['--json', ...args], env)
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout)
  }

  async function refusal (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: string, message: string }> {
    const result = await runCli(['--json', ...args], env)
    assert.equal(result.code, 1, result.stdout)
    return JSON.parse(result.stderr).error
  }

  it('initialises, enrolls once per code, unlocks at start, and refuses what it should', async function () {
    const agencyRepo = join(dir, 'agency')
    const buyerRepo = join(dir, 'buyer')
    await json(['--repo', agencyRepo, 'init'])
    await json(['--repo', agencyRepo, 'agency', 'init', '--bits', '2048'])
    await json(['--repo', buyerRepo, 'init'])
    const agency = await start(agencyRepo, ['--role', 'agency'])
    let buyer = await start(buyerRepo, ['--role', 'buyer'])
    const agencyAddr = agency.addresses[0]!

    const passFile = join(dir, 'pass')
    await writeFile(passFile, 'a long device passphrase\n', { mode: 0o600 })
    const loose = join(dir, 'loose-pass')
    await writeFile(loose, 'a long device passphrase\n', { mode: 0o644 })
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'init', '--passphrase-file', loose])).code, 'ERR_INSECURE_FILE')
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'init'], { KEYFAIR_PASSPHRASE: '' })).code, 'ERR_PASSPHRASE_REQUIRED')
    assert.deepEqual(await json(['--repo', buyerRepo, 'device', 'status']), { initialised: false, unlocked: false, enrolled: false })

    const { deviceId } = await json(['--repo', buyerRepo, 'device', 'init', '--passphrase-file', passFile, '--bits', '2048'])
    assert.match(deviceId, /^[0-9a-f]{32}$/)
    assert.equal((await stat(join(buyerRepo, 'device', 'keystore.cbor'))).mode & 0o777, 0o600)
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'init', '--passphrase-file', passFile])).code, 'ERR_DEVICE_EXISTS')

    const { code } = await json(['--repo', agencyRepo, 'agency', 'enroll-code', '--for', 'device', '--ttl', '10m'])
    const enrolled = await json(['--repo', buyerRepo, 'device', 'enroll', '--agency', agencyAddr, '--code', code])
    assert.equal(enrolled.deviceId, deviceId)
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'enroll', '--agency', agencyAddr, '--code', code])).code, 'ERR_ENROLL_CODE_USED')
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'enroll', '--agency', agencyAddr, '--code', 'NOTACODE'])).code, 'ERR_ENROLL_CODE_UNKNOWN')
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'enroll', '--agency', '/ip4/127.0.0.1/tcp/1', '--code', code])).code, 'ERR_BAD_REQUEST')

    // the installed chain is one openssl accepts, naming this device
    const certs = await json(['--repo', buyerRepo, 'device', 'certs'])
    await writeFile(join(dir, 'root.pem'), certs.root)
    await writeFile(join(dir, 'signing.pem'), certs.signing)
    const verified = await openssl(['verify', '-CAfile', join(dir, 'root.pem'), join(dir, 'signing.pem')])
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(new X509Certificate(certs.signing).subject, new RegExp(`CN=${deviceId}`))
    const { revocation, ...status } = await json(['--repo', buyerRepo, 'device', 'status'])
    assert.deepEqual(status, { initialised: true, unlocked: true, enrolled: true, deviceId })
    assert.equal(revocation.state, 'valid')
    assert.equal(revocation.crl.number, '1')

    // a restart locks it; a wrong passphrase at start refuses to start; the right one unlocks
    await buyer.stop()
    nodes.splice(nodes.indexOf(buyer), 1)
    await assert.rejects(start(buyerRepo, ['--role', 'buyer'], { KEYFAIR_PASSPHRASE: 'not the passphrase' }), /ERR_WRONG_PASSPHRASE|wrong passphrase/)
    // started with no passphrase at all: the device stays locked
    buyer = await start(buyerRepo, ['--role', 'buyer'], { KEYFAIR_PASSPHRASE: '' })
    assert.equal((await json(['--repo', buyerRepo, 'device', 'status'])).unlocked, false)
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'unlock'], { KEYFAIR_PASSPHRASE: 'wrong wrong wrong' })).code, 'ERR_WRONG_PASSPHRASE')
    await json(['--repo', buyerRepo, 'device', 'unlock', '--passphrase-file', passFile])
    assert.equal((await json(['--repo', buyerRepo, 'device', 'status'])).unlocked, true)
    await json(['--repo', buyerRepo, 'device', 'lock'])
    assert.equal((await json(['--repo', buyerRepo, 'device', 'status'])).unlocked, false)

    // a revoked device is refused a new certificate, whatever the code
    const revoked = await json(['--repo', agencyRepo, 'agency', 'revoke', deviceId, '--reason', 'keyCompromise'])
    // the node checks the device's certificates against the newest list it holds
    const after = await json(['--repo', buyerRepo, 'device', 'status'])
    assert.equal(after.enrolled, true)
    assert.equal(after.revocation.state, 'revoked')
    assert.equal(after.revocation.reason, 'keyCompromise')
    assert.equal(after.revocation.crl.number, String(revoked.crlNumber))
    const text = await runCli(['--repo', buyerRepo, 'device', 'status'])
    assert.match(text.stdout, /^enrolled: {4}yes, but REVOKED by the agency$/m)
    assert.match(text.stdout, /^revoked: {5}yes \(keyCompromise, \d{4}-\d\d-\d\dT[\d:.]+Z\)$/m)
    assert.match(text.stdout, new RegExp(`^crl: {9}number ${String(revoked.crlNumber)}, signed \\d+ s ago`, 'm'))
    await json(['--repo', buyerRepo, 'device', 'unlock'], { KEYFAIR_PASSPHRASE: 'a long device passphrase' })
    const second = await json(['--repo', agencyRepo, 'agency', 'enroll-code', '--for', 'device'])
    assert.equal((await refusal(['--repo', buyerRepo, 'device', 'enroll', '--agency', agencyAddr, '--code', second.code])).code, 'ERR_DEVICE_REVOKED')

    // a node without the buyer role has no device
    assert.equal((await refusal(['--repo', agencyRepo, 'device', 'status'])).code, 'ERR_DEVICE_NOT_RUNNING')
  })
})
