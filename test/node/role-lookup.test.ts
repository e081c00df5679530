import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { controlRoutes } from '../../node/control/routes.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { BuyerRole } from '../../node/roles/buyer.ts'
import { EscrowRole } from '../../node/roles/escrow.ts'

describe('typed role lookup', function () {
  let dir: string
  let node: KeyfairNode | undefined

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-roles-'))
    const repo = new Repo(join(dir, 'r'))
    await repo.init()
    node = new KeyfairNode({ repo, roles: ['buyer'], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [] })
    await node.start()
  })

  after(async function () {
    await node?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('answers a running role as its class', function () {
    const buyer = node!.role(BuyerRole)
    assert.ok(buyer instanceof BuyerRole)
    assert.equal(buyer.name, 'buyer')
  })

  it('refuses a role the node was not started with, naming it', function () {
    assert.throws(() => node!.role(EscrowRole), { name: 'RoleNotRunningError', code: 'ERR_ROLE_NOT_RUNNING', message: /--role escrow/ })
  })

  it('refuses a control call of a role the node does not run, naming the role', async function () {
    const routes = controlRoutes(node!, () => {})
    const signal = AbortSignal.timeout(10_000)
    const progress = (): void => {}
    await assert.rejects(routes['escrow.audit']({}, signal, progress), { code: 'ERR_ROLE_NOT_RUNNING', message: /--role escrow/ })
    await assert.rejects(routes['agency.crl']({}, signal, progress), { code: 'ERR_ROLE_NOT_RUNNING', message: /--role agency/ })
    await assert.rejects(routes.publish({ file: '/nonexistent', title: 't', tags: [], price: 1, t: 1, n: 1, escrows: [] }, signal, progress), { code: 'ERR_ROLE_NOT_RUNNING', message: /--role seller/ })
  })

  it('answers a control call through the role the node runs', async function () {
    const routes = controlRoutes(node!, () => {})
    // a buyer's search with no peers finds nothing, rather than being refused
    const answer = await routes.search({ words: ['nothing-here'], timeoutMs: 500 }, AbortSignal.timeout(10_000), () => {})
    assert.deepEqual(answer.offers, [])
  })
})
