// `keyfair devnet` as a user runs it: started from a terminal, driven from a second one
// through the command lines it prints, stopped with Ctrl-C (SIGINT) leaving no process
// behind, and started again on the same directory.
import assert from 'node:assert/strict'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive, runCli } from '../helpers/cli.ts'
import { processesNaming, startDevnet } from '../helpers/devnet.ts'
import { waitFor } from '../helpers/nodes.ts'
import type { DevnetProcess } from '../helpers/devnet.ts'

const READY_MS = 240_000

/** The printed `KEYFAIR_REPO=<repo> npx keyfair <args>` line of a node: its repo and arguments */
function driveLine (lines: string[], args: string): { repo: string } {
  const line = lines.find(l => l.includes(`npx keyfair ${args}`) && l.includes('KEYFAIR_REPO='))
  assert.ok(line != null, `a line to run 'keyfair ${args}' is printed`)
  return { repo: /KEYFAIR_REPO=(\S+)/.exec(line)![1]! }
}

describe('keyfair devnet', function () {
  this.timeout(600_000)
  let dir: string
  let devnet: DevnetProcess | undefined
  let pids: number[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-devnet-test-'))
  })

  after(async function () {
    // a failed assertion must not leave a node behind: the devnet, then each node by pid
    if (devnet != null && devnet.child.exitCode == null && devnet.child.signalCode == null) {
      devnet.child.kill('SIGTERM')
      await devnet.exited
    }
    for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('starts a marketplace whose printed command lines search, buy and play its sample work; Ctrl-C stops every process', async function () {
    const started = Date.now()
    devnet = startDevnet(['--dir', join(dir, 'net')])
    await devnet.waitForLine(/^devnet ready in /, READY_MS)
    const readyMs = Date.now() - started
    const { lines } = devnet
    assert.ok(lines.some(l => /^devnet: the agency certified escrow-3$/.test(l)), 'progress lines while it starts')
    pids = lines.flatMap(l => /^\S+\s+(agency|escrow|seller|buyer)\s+pid (\d+)\s+peer 12D3Koo\w+$/.exec(l)?.[2] ?? []).map(Number)
    assert.equal(pids.length, 6, 'an agency, 3 escrows, a seller and a buyer, each with its pid')
    assert.equal(lines.filter(l => /^\s+control http:\/\/127\.0\.0\.1:\d+$/.test(l)).length, 6, 'each node\'s control address')
    assert.ok(pids.every(isAlive))

    const buyer = driveLine(lines, 'search devnet')
    const env = { KEYFAIR_REPO: buyer.repo }
    const offer = /^sample work '.*' of seller-1: offer (\S+)$/.exec(lines.find(l => l.startsWith('sample work')) ?? '')?.[1]
    const plaintext = /plaintext (\S+)$/.exec(lines.find(l => l.includes('plaintext ')) ?? '')?.[1]
    assert.ok(offer != null && plaintext != null, 'the sample work is printed')

    const found = await runCli(['--json', 'search', 'devnet'], env)
    assert.equal(found.code, 0, found.stderr)
    const listing = JSON.parse(found.stdout).offers.find((o: { offer: string }) => o.offer === offer)
    assert.ok(listing != null, 'the buyer finds the sample work')
    assert.equal(listing.t, 2)
    assert.equal(listing.escrows, 3)

    const out = join(dir, 'bought.out')
    const bought = await runCli(['--json', 'buy', offer, '--out', out], env, 120_000)
    assert.equal(bought.code, 0, bought.stderr)
    assert.equal(JSON.parse(bought.stdout).escrows.length, 2, 'two escrows paid')
    const sample = await readFile(plaintext)
    assert.deepEqual(await readFile(out), sample)
    const played = join(dir, 'played.out')
    const play = await runCli(['--json', 'play', listing.content, '--out', played], env)
    assert.equal(play.code, 0, play.stderr)
    assert.deepEqual(await readFile(played), sample)

    // a second devnet on the same directory refuses while this one runs
    const second = await runCli(['--json', 'devnet', '--dir', join(dir, 'net')])
    assert.equal(second.code, 1)
    assert.equal(JSON.parse(second.stderr).error.code, 'ERR_DEVNET_RUNNING')

    const signalled = Date.now()
    devnet.child.kill('SIGINT')
    assert.equal(await devnet.exited, 0)
    await waitFor(() => pids.every(pid => !isAlive(pid)), 10_000, 'every node process to be gone')
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
    await waitFor(async () => (await processesNaming(join(dir, 'net'))).length === 0, 10_000, 'no process (sealed devices included) on the devnet\'s repos')
    console.log(`      devnet of 6 processes ready in ${readyMs} ms; stopped in ${Date.now() - signalled} ms after SIGINT`)
  })

  it('starts the same nodes again on the same directory, the purchase still in the buyer\'s device; SIGTERM stops them', async function () {
    const recorded = await readFile(join(dir, 'net', 'devnet.json'), 'utf8')
    devnet = startDevnet(['--dir', join(dir, 'net')])
    await devnet.waitForLine(/^devnet ready in /, READY_MS)
    assert.ok(devnet.lines.some(l => l === 'devnet: starting again 6 node processes in ' + join(dir, 'net')))
    assert.ok(!devnet.lines.some(l => /certified/.test(l)), 'nothing is set up twice')
    assert.equal(await readFile(join(dir, 'net', 'devnet.json'), 'utf8'), recorded)
    pids = devnet.lines.flatMap(l => /\s+pid (\d+)\s+peer /.exec(l)?.[1] ?? []).map(Number)
    const { repo } = driveLine(devnet.lines, 'search devnet')
    const library = await runCli(['--json', 'library'], { KEYFAIR_REPO: repo })
    assert.equal(library.code, 0, library.stderr)
    assert.equal(JSON.parse(library.stdout).licences.length, 1)
    devnet.child.kill('SIGTERM')
    assert.equal(await devnet.exited, 0)
    await waitFor(() => pids.every(pid => !isAlive(pid)), 10_000, 'every node process to be gone')
  })
})
