import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
})
