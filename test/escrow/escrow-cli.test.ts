// The escrow operator's CLI against real node processes: init, enroll, deposit,
// withdraw, ledger, audit (which must fail on a tampered ledger), and `balance`; then the
// same with the ledger in PostgreSQL.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { Ledger } from '../../node/escrow/ledger.ts'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import { freePort } from '../helpers/nodes.ts'
import { requirePostgres, startPostgres } from '../helpers/postgres.ts'
import type { NodeProcess } from '../helpers/cli.ts'
import type { PgServer } from '../helpers/postgres.ts'
import type { NewHold } from '../../node/escrow/ledger-store.ts'

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
    assert.match(tampered.stdout, /deposits €5\.00 − withdrawals €2\.00 = €3\.00; balances \+ open holds \+ reservations = €3\.01/)
  })
})

describe('keyfair escrow CLI with the ledger on PostgreSQL', function () {
  this.timeout(180_000)
  let server: PgServer | undefined
  let dir: string
  const nodes: NodeProcess[] = []

  before(async function () {
    server = await startPostgres(requirePostgres(this))
    dir = await mkdtemp(join(tmpdir(), 'keyfair-escrow-pg-cli-'))
  })

  after(async function () {
    await Promise.all(nodes.splice(0).map(async n => n.stop()))
    await server?.destroy()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  const cli = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, json: any }> => {
    const result = await runCli(['--json', ...args], { PGPASSWORD: '', ...env })
    return { code: result.code, json: JSON.parse(result.code === 0 ? result.stdout : result.stderr) }
  }

  it('keeps the ledger in the database named by --ledger, the password from a file or PGPASSWORD only', async function () {
    const db = server!
    const url = await db.createDatabase('cli_ledger')
    const repo = join(dir, 'escrow')
    assert.equal((await cli(['--repo', repo, 'init'])).code, 0)
    const init = ['--repo', repo, 'escrow', 'init', '--bits', '2048', '--unblind-workers', '0']
    const withPassword = url.replace(`${db.user}@`, `${db.user}:${db.password}@`)
    const inUrl = await cli([...init, '--ledger', withPassword])
    assert.equal(inUrl.json.error.code, 'ERR_BAD_CONFIG')
    assert.ok(!JSON.stringify(inUrl.json).includes(db.password), 'the password is not repeated back')
    assert.equal((await cli([...init, '--ledger', 'mysql://u@127.0.0.1/db'])).json.error.code, 'ERR_BAD_CONFIG')
    assert.equal((await cli([...init, '--ledger', url])).json.error.code, 'ERR_LEDGER_CONNECT', 'no password: refused by the server')
    const loose = join(dir, 'loose-password')
    await writeFile(loose, db.password, { mode: 0o644 })
    await chmod(loose, 0o644)
    assert.equal((await cli([...init, '--ledger', url, '--ledger-password-file', loose])).json.error.code, 'ERR_INSECURE_FILE')
    const down = url.replace(`:${db.port}/`, `:${await freePort()}/`)
    assert.equal((await cli([...init, '--ledger', down, '--ledger-password-file', db.passwordFile])).json.error.code, 'ERR_LEDGER_UNAVAILABLE')
    const made = await cli([...init, '--ledger', url, '--ledger-password-file', db.passwordFile])
    assert.equal(made.code, 0, JSON.stringify(made.json))
    assert.equal(made.json.ledger, url)

    const escrow = await startNodeProcess(['--repo', repo, 'start', '--role', 'escrow', '--listen', '/ip4/127.0.0.1/tcp/0'], { PGPASSWORD: '' })
    nodes.push(escrow)
    const peer = '12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8'
    assert.deepEqual((await cli(['--repo', repo, 'escrow', 'deposit', peer, '500'])).json, { account: peer, balance: 500, currency: 'EUR' })
    assert.equal((await cli(['--repo', repo, 'escrow', 'withdraw', peer, '600'])).json.error.code, 'ERR_INSUFFICIENT_FUNDS')
    assert.deepEqual((await cli(['--repo', repo, 'escrow', 'withdraw', peer, '200'])).json, { account: peer, balance: 300, currency: 'EUR' })
    const audit = (await cli(['--repo', repo, 'escrow', 'audit'])).json
    assert.deepEqual([audit.ok, audit.deposits, audit.withdrawals, audit.held], [true, 500, 200, 300])
    await escrow.stop()
    nodes.splice(nodes.indexOf(escrow), 1)

    // the money is in the database, not in the repo: tampering there is what the audit finds
    assert.equal(existsSync(join(repo, 'escrow', 'ledger.db')), false)
    const client = new pg.Client({ host: '127.0.0.1', port: db.port, user: db.user, password: db.password, database: 'cli_ledger' })
    await client.connect()
    try {
      assert.deepEqual((await client.query('SELECT version FROM schema_version ORDER BY version')).rows.map((r: { version: number }) => r.version), [1, 2, 3, 4])
      await client.query('UPDATE accounts SET balance = balance + 1 WHERE id = $1', [peer])
    } finally {
      await client.end()
    }
    // and the password from the environment serves as well as the file
    const settings = join(repo, 'escrow', 'settings.json')
    const saved = JSON.parse(await readFile(settings, 'utf8'))
    delete saved.ledgerPasswordFile
    await writeFile(settings, JSON.stringify(saved))
    nodes.push(await startNodeProcess(['--repo', repo, 'start', '--role', 'escrow'], { PGPASSWORD: db.password }))
    const tampered = await runCli(['--repo', repo, 'escrow', 'audit'])
    assert.equal(tampered.code, 1)
    assert.match(tampered.stdout, new RegExp(`account ${peer} holds 301 but its postings sum to 300`))
  })
  it('moves a SQLite ledger with open and ended holds into an empty database: audits agree, a non-empty target is refused', async function () {
    const db = server!
    const repo = join(dir, 'moving')
    assert.equal((await cli(['--repo', repo, 'init'])).code, 0)
    assert.equal((await cli(['--repo', repo, 'escrow', 'init', '--bits', '2048', '--unblind-workers', '0'])).code, 0)
    // a ledger with history: deposits, a withdrawal, holds released, refunded, expired and still open
    const ledger = Ledger.open(join(repo, 'escrow', 'ledger.db'))
    const hold = (n: number, amount: number): NewHold => ({
      id: `hold-${n}`, device: 'device-a', purchase: `purchase-${n}`, j: 1, buyer: 'buyer-a', seller: 'seller-a', amount, offer: 'offer-a', request: `request-${n}`,
      requestBytes: new Uint8Array([n, 1, 2]), answer: new Uint8Array([n, 3, 4, 5]), createdAt: Date.now() + n, expiresAt: Date.now() + 86_400_000
    })
    try {
      ledger.deposit('buyer-a', 1000, 'wire')
      ledger.withdraw('buyer-a', 100)
      for (let n = 1; n <= 5; n++) ledger.openHold(hold(n, 10 * n))
      ledger.endHold('hold-1', 'release', 'receipt')
      ledger.endHold('hold-2', 'refund', 'key dispute: refunded')
      ledger.endHold('hold-3', 'expire', 'expired unanswered')
    } finally {
      ledger.close()
    }
    const url = await db.createDatabase('moved')
    const escrow = await startNodeProcess(['--repo', repo, 'start', '--role', 'escrow', '--listen', '/ip4/127.0.0.1/tcp/0'])
    nodes.push(escrow)
    const before = (await cli(['--repo', repo, 'escrow', 'audit'])).json
    const holdsBefore = (await cli(['--repo', repo, 'escrow', 'holds'])).json.holds
    const postingsBefore = (await cli(['--repo', repo, 'escrow', 'ledger', '--limit', '1000'])).json.postings
    assert.equal((await cli(['--repo', repo, 'escrow', 'migrate', '--to', url, '--ledger-password-file', db.passwordFile])).json.error.code, 'ERR_REPO_LOCKED', 'not while the node runs')
    await escrow.stop()
    nodes.splice(nodes.indexOf(escrow), 1)

    const moved = await cli(['--repo', repo, 'escrow', 'migrate', '--to', url, '--ledger-password-file', db.passwordFile])
    assert.equal(moved.code, 0, JSON.stringify(moved.json))
    assert.deepEqual(moved.json.rows, { accounts: 8, entries: 10, postings: 20, holds: 5 })
    assert.deepEqual(moved.json.after, moved.json.before)
    const { currency: _currency, ...beforeAudit } = before
    assert.deepEqual(moved.json.before, beforeAudit)
    const again = await runCli(['--repo', repo, '--json', 'escrow', 'migrate', '--to', url])
    assert.equal(JSON.parse(again.stderr).error.code, 'ERR_BAD_CONFIG', 'already moved')

    nodes.push(await startNodeProcess(['--repo', repo, 'start', '--role', 'escrow']))
    assert.deepEqual((await cli(['--repo', repo, 'escrow', 'audit'])).json, before, 'the audit after the move agrees')
    assert.deepEqual((await cli(['--repo', repo, 'escrow', 'holds'])).json.holds, holdsBefore)
    assert.deepEqual((await cli(['--repo', repo, 'escrow', 'ledger', '--limit', '1000'])).json.postings, postingsBefore)
    // the moved ledger takes new entries after the old ones
    const newcomer = '12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8'
    assert.deepEqual((await cli(['--repo', repo, 'escrow', 'deposit', newcomer, '5'])).json, { account: newcomer, balance: 5, currency: 'EUR' })
    assert.equal((await cli(['--repo', repo, 'escrow', 'ledger', '--limit', '1'])).json.postings[0].entry, 11)

    // another escrow cannot move its ledger into a database already holding one
    const other = join(dir, 'other')
    assert.equal((await cli(['--repo', other, 'init'])).code, 0)
    assert.equal((await cli(['--repo', other, 'escrow', 'init', '--bits', '2048'])).code, 0)
    const second = Ledger.open(join(other, 'escrow', 'ledger.db'))
    second.deposit('someone', 1)
    second.close()
    assert.equal((await cli(['--repo', other, 'escrow', 'migrate', '--to', url, '--ledger-password-file', db.passwordFile])).json.error.code, 'ERR_LEDGER_NOT_EMPTY')
    assert.equal(JSON.parse(await readFile(join(other, 'escrow', 'settings.json'), 'utf8')).ledger, undefined, 'its settings unchanged')
  })
})
