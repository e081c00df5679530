// The control API's contract is checked by the server: a request of the wrong shape is a 400
// naming the field, and the route never sees it; a well-formed one reaches the route typed.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ControlClient } from '../../node/control/client.ts'
import { ControlServer } from '../../node/control/server.ts'
import { api } from '../../node/control/api.ts'
import { Repo } from '../../node/repo.ts'
import type { ControlRoutes, Route } from '../../node/control/routes.ts'

describe('control API contract', function () {
  let dir: string
  let server: ControlServer
  let repo: Repo
  let token: string
  const reached: Array<{ name: string, body: unknown }> = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-contract-'))
    repo = new Repo(join(dir, 'repo'))
    await repo.init()
    token = await repo.readToken()
    // each route records what reached it: a refused request must never get this far
    const recorder = (name: string): Route => async body => {
      reached.push({ name, body })
      return { ok: true }
    }
    const routes = { publish: recorder('publish'), buy: recorder('buy'), 'escrow.deposit': recorder('escrow.deposit') }
    server = new ControlServer({ repo, routes: routes as unknown as ControlRoutes, port: 0 })
    await server.start()
  })

  after(async function () {
    await server?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  beforeEach(function () { reached.length = 0 })

  async function post (name: string, body: unknown): Promise<{ status: number, error?: { code: string, message: string } }> {
    const res = await fetch(`${server.url}/api/v1/${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000)
    })
    const json = await res.json() as { error?: { code: string, message: string } }
    return { status: res.status, ...json }
  }

  const publish = { file: '/tmp/work', title: 'work', tags: ['a'], price: 100, t: 1, n: 1, escrows: [] }
  const peer = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()

  const cases: Array<[string, string, () => Promise<unknown>, RegExp]> = [
    ['publish', 'a title that is a number', async () => ({ ...publish, title: 42 }), /^title /],
    ['publish', 'a price in a string', async () => ({ ...publish, price: '12.50' }), /^price must be an integer/],
    ['publish', 'no list of escrows', async () => ({ ...publish, escrows: 'all' }), /^escrows must be a list/],
    ['buy', 'no offer', async () => ({ output: '/tmp/x' }), /^offer must be an offer id/],
    ['buy', 'providers that are not peer ids', async () => ({ offer: 'o', from: ['not-a-peer'] }), /^from must be a list/],
    ['escrow.deposit', 'an account that is no peer id', async () => ({ account: 'nobody', amount: 5 }), /^account 'nobody' is not a peer id/],
    ['escrow.deposit', 'a negative amount', async () => ({ account: await peer(), amount: -5 }), /^amount must be a whole number/],
    ['escrow.deposit', 'a list for a body', async () => [1, 2], /^request body must be a JSON object/]
  ]
  for (const [name, what, body, message] of cases) {
    it(`${name} with ${what}: 400 ERR_BAD_REQUEST naming the field, the route never runs`, async function () {
      const answer = await post(name, await body())
      assert.equal(answer.status, 400)
      assert.equal(answer.error?.code, 'ERR_BAD_REQUEST')
      assert.match(answer.error?.message ?? '', message)
      assert.deepEqual(reached, [])
    })
  }

  it('a well-formed request reaches its route as the contract reads it', async function () {
    const account = await peer()
    const client = new ControlClient(repo)
    assert.deepEqual(await client.call('escrow.deposit', { account, amount: '12.50' }, { timeoutMs: 10_000 }), { ok: true })
    assert.deepEqual(await client.call('buy', { offer: 'o' }, { timeoutMs: 10_000 }), { ok: true })
    assert.deepEqual(await client.stream('publish', publish, () => {}, { timeoutMs: 10_000 }), { ok: true })
    // absent optional fields stay absent; a boolean left out is read as false
    assert.deepEqual(reached, [
      { name: 'escrow.deposit', body: { account, amount: '12.50' } },
      { name: 'buy', body: { offer: 'o', seed: false } },
      { name: 'publish', body: publish }
    ])
  })

  it('every call has a validator that refuses a body that is not an object', function () {
    for (const [name, call] of Object.entries(api)) {
      assert.throws(() => call.validate('text'), { code: 'ERR_BAD_REQUEST' }, name)
    }
  })
})
