// `keyfair buy` by an offer id or a content id alone, on buyer nodes that never ran a
// search: the offer is found through the DHT (the offer id is announced beside the
// content). A string that is no such id is a one-line usage error.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileExists } from '../../device/store/files.ts'
import { ControlClient } from '../../node/control/client.ts'
import { Repo } from '../../node/repo.ts'
import { isAlive, runCli } from '../helpers/cli.ts'
import { startDevnet } from '../helpers/devnet.ts'
import { waitFor } from '../helpers/nodes.ts'
import type { DevnetReport } from '../../node/devnet/report.ts'
import type { DevnetProcess } from '../helpers/devnet.ts'

describe('buy by offer id or content id alone', function () {
  this.timeout(600_000)
  let dir: string
  let devnet: DevnetProcess
  let report: DevnetReport

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-buy-by-id-'))
    devnet = startDevnet(['--json', '--dir', join(dir, 'net'), '--buyers', '3'])
    const line = await devnet.waitForLine(/"event":"ready"/, 240_000)
    report = JSON.parse(line) as DevnetReport
  })

  after(async function () {
    if (devnet.child.exitCode == null && devnet.child.signalCode == null) devnet.child.kill('SIGTERM')
    await devnet.exited
    const pids = report?.nodes.map(n => n.pid) ?? []
    await waitFor(() => pids.every(pid => !isAlive(pid)), 15_000, 'every node to stop')
    await rm(dir, { recursive: true, force: true })
  })

  const buyer = (n: number): { repo: string } => report.nodes.find(x => x.name === `buyer-${n}`)!
  const buy = async (n: number, ref: string, out: string): Promise<ReturnType<typeof runCli>> =>
    runCli(['--json', '--repo', buyer(n).repo, 'buy', ref, '--out', out], {}, 120_000)

  it('buys by offer id on a node that never searched', async function () {
    const work = report.works[0]!
    assert.equal(await fileExists(join(buyer(1).repo, 'offers')), false, 'no offer was ever listed on this node')
    const out = join(dir, 'by-offer.out')
    const started = Date.now()
    const r = await buy(1, work.offer, out)
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout)
    assert.equal(result.offer, work.offer)
    assert.equal(result.content, work.content)
    assert.deepEqual(await readFile(out), await readFile(work.file))
    console.log(`      bought by offer id in ${Date.now() - started} ms (lookup, download, payment, play)`)
  })

  it('buys by content id, the content having one offer', async function () {
    const work = report.works[0]!
    const out = join(dir, 'by-content.out')
    const r = await buy(2, work.content, out)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(JSON.parse(r.stdout).offer, work.offer, 'the content\'s offer is the one bought')
    assert.deepEqual(await readFile(out), await readFile(work.file))
  })

  it('lists an offer searched for by its id', async function () {
    const work = report.works[0]!
    const r = await runCli(['--json', '--repo', buyer(3).repo, 'search', work.offer])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout).offers.map((o: { offer: string }) => o.offer), [work.offer])
  })

  it('answers a malformed id with a one-line usage error, in text and in JSON', async function () {
    for (const bad of ['not-an-offer', 'bafkreia72fyadnv6uypovhb63cxbhsnalxplztghyhsjwjlhzglmrf5pom']) {
      const json = await runCli(['--json', '--repo', buyer(3).repo, 'buy', bad])
      assert.equal(json.code, 1)
      const { error } = JSON.parse(json.stderr)
      assert.equal(error.code, 'ERR_USAGE')
      assert.match(error.message, new RegExp(bad))
      const text = await runCli(['--repo', buyer(3).repo, 'buy', bad])
      assert.equal(text.code, 1)
      assert.equal(text.stderr.trim().split('\n').length, 1, text.stderr)
      assert.match(text.stderr, /^keyfair: '.*' is (not an offer id|a CID, but not)/)
    }
    // the node's control API refuses it the same way (a client that skips the CLI's check)
    const client = new ControlClient(new Repo(buyer(3).repo))
    await assert.rejects(client.stream('buy', { offer: 'not-an-offer' }, () => {}, { timeoutMs: 30_000 }), { code: 'ERR_USAGE' })
    const res = await runCli(['--json', '--repo', buyer(3).repo, 'purchases'])
    assert.equal(res.code, 0, res.stderr)
    assert.deepEqual(JSON.parse(res.stdout).purchases, [], 'nothing was bought')
  })

  it('answers a well-formed id that names nothing with ERR_UNKNOWN_OFFER once the lookup ends', async function () {
    const unknown = 'bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
    const started = Date.now()
    const r = await runCli(['--json', '--repo', buyer(3).repo, 'buy', unknown], {}, 120_000)
    assert.equal(r.code, 1)
    assert.equal(JSON.parse(r.stderr).error.code, 'ERR_UNKNOWN_OFFER')
    assert.ok(Date.now() - started < 60_000, 'the lookup is bounded in time')
  })
})
