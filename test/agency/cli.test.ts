import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { enrollWithAgency } from '../../node/agency/client.ts'
import { controlRoutes } from '../../node/control/routes.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import { deviceCsrs, deviceKeys, openssl } from '../helpers/pki.ts'
import type { NodeProcess } from '../helpers/cli.ts'

describe('keyfair agency CLI against a real node process', function () {
  let dir: string
  let repo: string
  let agencyNode: NodeProcess | undefined
  let client: KeyfairNode | undefined

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-agency-cli-'))
    repo = join(dir, 'agency')
    assert.equal((await runCli(['--repo', repo, 'init'])).code, 0)
  })

  after(async function () {
    await client?.stop()
    await agencyNode?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('`agency init` makes the root once; `start --role agency` needs it', async function () {
    let result = await runCli(['--repo', repo, 'start', '--role', 'agency'])
    assert.equal(result.code, 1)
    assert.equal(result.stderr, `keyfair: no agency in ${repo} (run: keyfair agency init --repo ${repo})\n`)

    result = await runCli(['--repo', repo, '--json', 'agency', 'init', '--bits', '2048', '--name', 'Test Agency'])
    assert.equal(result.code, 0, result.stderr)
    const init = JSON.parse(result.stdout)
    const fingerprint = await openssl(['x509', '-in', join(repo, 'agency', 'ca.crt'), '-noout', '-fingerprint', '-sha256', '-subject'])
    assert.match(fingerprint.stdout, new RegExp(`Fingerprint=${init.fingerprint}\\n`))
    assert.match(fingerprint.stdout, /subject=CN = Test Agency/)
    await assert.rejects(stat(join(repo, 'agency', 'ca.key')), { code: 'ENOENT' }, 'no plaintext CA key')
    assert.equal((await stat(join(repo, 'keys', 'agency-ca.sealed'))).mode & 0o777, 0o600)
    assert.equal((await stat(join(repo, 'keys'))).mode & 0o777, 0o700)

    result = await runCli(['--repo', repo, 'agency', 'init', '--bits', '2048'])
    assert.equal(result.code, 1)
    assert.equal(result.stderr, `keyfair: an agency already exists in ${repo}\n`)
    result = await runCli(['--repo', join(dir, 'elsewhere'), '--json', 'agency', 'init', '--bits', '1024'])
    assert.equal(JSON.parse(result.stderr).error.code, 'ERR_REPO_NOT_INITIALISED')
  })

  it('enroll-code, enrollment by a peer, certs, issue, revoke and crl through the CLI', async function () {
    const ready = agencyNode = await startNodeProcess(['--repo', repo, 'start', '--role', 'agency'])
    const cli = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => runCli(['--repo', repo, ...args])

    let result = await cli('--json', 'agency', 'enroll-code', '--for', 'device', '--ttl', '10m')
    assert.equal(result.code, 0, result.stderr)
    const issuedCode = JSON.parse(result.stdout)
    assert.match(issuedCode.code, /^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$/)
    const ttl = Date.parse(issuedCode.expiresAt) - Date.now()
    assert.ok(ttl > 9 * 60_000 && ttl <= 10 * 60_000, `expires in about 10 minutes (${ttl} ms)`)

    // a peer enrolls with the code the operator read out
    const clientRepo = new Repo(join(dir, 'client'))
    await clientRepo.init()
    client = new KeyfairNode({ repo: clientRepo, roles: ['buyer'], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [] })
    await client.start()
    const keys = deviceKeys()
    const components = { connectionManager: (client.libp2p as any).components.connectionManager }
    const rootPem = await readFile(join(repo, 'agency', 'ca.crt'), 'utf8')
    await enrollWithAgency(components, multiaddr(ready.addresses[0]!), { code: issuedCode.code, csrs: deviceCsrs(keys) }, { rootPem })

    result = await cli('--json', 'agency', 'certs')
    const listed = JSON.parse(result.stdout).certificates
    assert.deepEqual(listed.map((c: any) => [c.purpose, c.subject]).sort(), [['device-encryption', keys.deviceId], ['device-signing', keys.deviceId]])

    // the operator certifies an escrow from an openssl-made CSR
    const csrFile = join(dir, 'escrow.csr')
    const made = await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'escrow.key'), '-subj', `/CN=${client.status().peerId}/OU=keyfair escrow`, '-out', csrFile])
    assert.equal(made.code, 0, made.stderr)
    result = await cli('agency', 'issue', csrFile, '--purpose', 'escrow', '--out', join(dir, 'escrow.pem'))
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^issued escrow certificate [0-9a-f]+ for 12D3/)
    await writeFile(join(dir, 'root.pem'), rootPem)
    const verified = await openssl(['verify', '-CAfile', join(dir, 'root.pem'), join(dir, 'escrow.pem')])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    result = await cli('agency', 'issue', csrFile, '--purpose', 'device-signing')
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^keyfair: device-signing CSR: OU must be 'keyfair device'/)

    result = await cli('agency', 'revoke', keys.deviceId, '--reason', 'keyCompromise')
    assert.equal(result.code, 0, result.stderr)
    const revokedSerials = listed.map((c: any) => c.serial)
    for (const serial of revokedSerials) assert.ok(result.stdout.includes(`revoked ${serial}`), result.stdout)
    assert.match(result.stdout, /CRL number 2\n$/)
    result = await cli('agency', 'revoke', 'no-such-device')
    assert.equal(result.code, 1)
    assert.equal(result.stderr, "keyfair: no certificate with serial, device id or peer id 'no-such-device'\n")

    const crlFile = join(dir, 'crl.der')
    result = await cli('agency', 'crl', '--out', crlFile)
    assert.match(result.stdout, /^CRL number 2, 2 revoked, next update /)
    const crlText = await openssl(['crl', '-in', crlFile, '-inform', 'DER', '-noout', '-text'])
    for (const serial of revokedSerials) assert.ok(crlText.stdout.includes(serial.toUpperCase()))
    result = await cli('agency', 'crl')
    await writeFile(join(dir, 'crl.pem'), result.stdout)
    const fromPem = await openssl(['crl', '-in', join(dir, 'crl.pem'), '-noout', '-CAfile', join(dir, 'root.pem')])
    assert.match(fromPem.stdout + fromPem.stderr, /verify OK/)

    result = await cli('agency', 'certs')
    assert.equal(result.stdout.split('\n').filter(l => l.includes('REVOKED')).length, 2)
    assert.equal(result.stdout.split('\n').filter(l => l.includes(' escrow ')).length, 1)
  })

  it('agency commands on a node without the agency role say so', async function () {
    assert.ok(client != null)
    const routes = controlRoutes(client, () => {})
    await assert.rejects(routes['agency.enrollCode']({ kind: 'device' }, AbortSignal.timeout(1000), () => {}), { code: 'ERR_ROLE_NOT_RUNNING', message: /--role agency/ })
    await assert.rejects(routes['agency.crl']({}, AbortSignal.timeout(1000), () => {}), { code: 'ERR_ROLE_NOT_RUNNING', message: /--role agency/ })
  })
})
