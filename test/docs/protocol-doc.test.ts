// docs/protocol.md is the specification a second implementation is written from: every
// protocol id a node with every role registers with libp2p must be named in it. Read from a
// real node process's status (libp2p's getProtocols()), not from a list kept by hand.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import type { NodeProcess } from '../helpers/cli.ts'

const PROTOCOL_DOC = new URL('../../docs/protocol.md', import.meta.url)

describe('docs/protocol.md names every protocol the node serves', function () {
  this.timeout(180_000)
  let dir = ''
  let node: NodeProcess | undefined

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'keyfair-protocol-doc-')) })
  after(async () => {
    await node?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('lists each protocol id registered by a node running agency, escrow, seller and buyer', async function () {
    const repo = join(dir, 'node')
    const init = await runCli(['--repo', repo, 'init', '--role', 'agency,escrow,seller,buyer', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'])
    assert.equal(init.code, 0, init.stderr)
    const agency = await runCli(['--repo', repo, 'agency', 'init', '--bits', '2048'])
    assert.equal(agency.code, 0, agency.stderr)
    node = await startNodeProcess(['--repo', repo, 'start', '--role', 'agency,escrow,seller,buyer'])
    const status = await runCli(['--repo', repo, '--json', 'status'])
    assert.equal(status.code, 0, status.stderr)
    const protocols: string[] = JSON.parse(status.stdout).protocols
    const keyfair = protocols.filter(p => p.startsWith('/keyfair/'))
    // the roles' own protocols and the private DHT: a status that lost them proves nothing
    for (const expected of ['/keyfair/agency/enroll/1.0.0', '/keyfair/escrow/unblind/1.0.0', '/keyfair/license/1.0.0', '/keyfair/offer/1.0.0', '/keyfair/kad/1.0.0']) {
      assert.ok(keyfair.includes(expected), `${expected} not registered: ${protocols.join(', ')}`)
    }
    const doc = await readFile(PROTOCOL_DOC, 'utf8')
    const missing = protocols.filter(p => !doc.includes(`\`${p}\``))
    assert.deepEqual(missing, [], `docs/protocol.md does not name: ${missing.join(', ')}`)
  })
})
