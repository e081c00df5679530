// The escrow operator's CLI against real node processes: init, enroll, deposit,
// withdraw, ledger, audit (which must fail on a tampered ledger), and `balance`.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import type { NodeProcess } from '../helpers/cli.ts'

describe('keyfair escrow CLI on real node processes', function () {
  this.timeout(120_000)
  let dir: string
  const nodes: NodeProcess[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-escrow-cli-'))
  })

  after(async function () {
    await Promise.all(nodes.splice(0).map(async n => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  async function start (repo: string, args: string[]): Promise<NodeProcess> {
    const node = await startNodeProcess(['--repo', repo, 'start', ...args])
    nodes.push(node)
    return node
  }

  async function ok (args: string[]): Promise<any> {
    const result = await runCli(['--json', ...args])
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout)
  }

  async function refused (args: string[]): Promise<string> {
    const result = await runCli(['--json', ...args])
    assert.equal(result.code, 1, result.stdout)
    return JSON.parse(result.stderr).error.code
  }

  it('enrolls, moves money in and out, lists the ledger, and audits it', async function () {
    const [agencyRepo, escrowRepo, customerRepo] = ['agency', 'escrow', 'customer'].map(n => join(dir, n)) as [string, string, string]
    for (const repo of [agencyRepo, escrowRepo, customerRepo]) await ok(['--repo', repo, 'init'])
    await ok(['--repo', agencyRepo, 'agency', 'init', '--bits', '2048'])
    const agency = await start(agencyRepo, ['--role', 'agency'])

    const init = await ok(['--repo', escrowRepo, 'escrow', 'init', '--bits', '2048', '--currency', 'EUR', '--hold-ttl', '2h', '--unblind-workers', '1'])
    assert.equal(init.holdTtlMs, 2 * 3600_000)
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'init', '--bits', '2048']), 'ERR_BAD_CONFIG')
    let escrow = await start(escrowRepo, ['--role', 'escrow', '--listen', '/ip4/127.0.0.1/tcp/0'])
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'info']), 'ERR_ESCROW_NOT_READY')
    const { code } = await ok(['--repo', agencyRepo, 'agency', 'enroll-code', '--for', 'escrow'])
    const enrolled = await ok(['--repo', escrowRepo, 'escrow', 'enroll', '--agency', agency.addresses[0]!, '--code', code])
    assert.equal(enrolled.peerId, escrow.peerId)
    const info = await ok(['--repo', escrowRepo, 'escrow', 'info'])
    assert.deepEqual([info.bits, info.currency, info.unblindWorkers, info.crl], [2048, 'EUR', 1, '1'])

    const customer = await start(customerRepo, ['--role', 'seller'])
    const peer = customer.peerId
    assert.deepEqual(await ok(['--repo', escrowRepo, 'escrow', 'deposit', peer, '500', '--memo', 'wire 1']), { account: peer, balance: 500, currency: 'EUR' })
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'withdraw', peer, '600']), 'ERR_INSUFFICIENT_FUNDS')
    assert.deepEqual(await ok(['--repo', escrowRepo, 'escrow', 'withdraw', peer, '2.00']), { account: peer, balance: 300, currency: 'EUR' })
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'deposit', 'not-a-peer', '5']), 'ERR_BAD_REQUEST')
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'deposit', peer, '1.505']), 'ERR_BAD_AMOUNT')
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'deposit', peer, '1.50 USD']), 'ERR_BAD_AMOUNT')
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'deposit', peer, '-5']), 'ERR_BAD_REQUEST')
    assert.equal(await refused(['--repo', escrowRepo, 'escrow', 'ledger', '--kind', 'gift']), 'ERR_BAD_REQUEST')

    const ledger = await ok(['--repo', escrowRepo, 'escrow', 'ledger', '--account', peer])
    assert.deepEqual(ledger.postings.map((p: any) => [p.kind, p.amount]), [['withdraw', -200], ['deposit', 500]])
    assert.equal(ledger.postings[1].memo, 'wire 1')
    const balance = await ok(['--repo', customerRepo, 'balance', '--escrow', `${escrow.addresses[0]!}`])
    assert.deepEqual([balance.account, balance.balance, balance.currency], [peer, 300, 'EUR'])
    const audit = await ok(['--repo', escrowRepo, 'escrow', 'audit'])
    assert.deepEqual([audit.ok, audit.deposits, audit.withdrawals, audit.held], [true, 500, 200, 300])

    // money appearing from nowhere: the audit names it and exits 1
    await escrow.stop()
    nodes.splice(nodes.indexOf(escrow), 1)
    const db = new DatabaseSync(join(escrowRepo, 'escrow', 'ledger.db'))
    db.prepare('UPDATE accounts SET balance = balance + 1 WHERE id = ?').run(peer)
    db.close()
    escrow = await start(escrowRepo, ['--role', 'escrow'])
    const tampered = await runCli(['--repo', escrowRepo, 'escrow', 'audit'])
    assert.equal(tampered.code, 1)
    assert.match(tampered.stdout, /AUDIT FAILED/)
    assert.match(tampered.stdout, new RegExp(`account ${peer} holds 301 but its postings sum to 300`))
    assert.match(tampered.stdout, /deposits €5\.00 − withdrawals €2\.00 = €3\.00; balances \+ open holds = €3\.01/)
  })
})
