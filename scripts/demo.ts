/**
 * `npm start`: a real local swarm purchase on loopback, driven through the keyfair CLI
 * only. An agency, 5 escrows, a seller and 2 buyers run as separate processes; the
 * devices and escrows enroll with one-time codes; the seller publishes a generated
 * work 3-of-5, device-bound (the default: no escrows, not even all five together, learn
 * its key); buyer A finds it, buys it and seeds it; buyer B downloads the ciphertext
 * from A alone and gets its own licence from the seller; balances before and after are
 * printed; and A's licence copied into B's device is shown not to decrypt. Every
 * process it starts is stopped.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm, KEYFAIR_BIN } from './swarm.ts'
import type { SwarmNode } from './swarm.ts'

// the repos are thrown away at the end unless kept: a fixed passphrase, unless one is given
const PASSPHRASE = process.env.KEYFAIR_PASSPHRASE != null && process.env.KEYFAIR_PASSPHRASE !== '' ? process.env.KEYFAIR_PASSPHRASE : 'demo device passphrase'

/** `--keep DIR`: leave the nodes' repos under DIR when the demo ends, to inspect them */
function keepDir (argv: string[]): string | undefined {
  const at = argv.indexOf('--keep')
  if (at < 0) return undefined
  const dir = argv[at + 1]
  if (dir == null || dir.startsWith('--')) throw new Error('--keep needs a directory')
  return dir
}
const PRICE = 100
const WORK_BYTES = 8 * 1024 * 1024 + 12345

interface CliError extends Error { code?: string }

function cli (node: SwarmNode, ...args: string[]): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [KEYFAIR_BIN, '--repo', node.repo, '--json', ...args], { env: { ...process.env, KEYFAIR_PASSPHRASE: PASSPHRASE }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err == null) {
        resolve(JSON.parse(stdout))
        return
      }
      let failure: CliError
      try {
        const { error } = JSON.parse(stderr)
        failure = Object.assign(new Error(error.message), { code: error.code })
      } catch {
        failure = new Error(stderr.trim() || err.message)
      }
      reject(failure)
    })
  })
}

const say = (line = ''): void => { process.stdout.write(line + '\n') }
const sha256 = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex')
const short = (id: string): string => `${id.slice(0, 8)}…${id.slice(-6)}`

async function main (): Promise<void> {
  const keep = keepDir(process.argv.slice(2))
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-demo-'))
  const specs = [
    { roles: ['agency'], prepare: [['agency', 'init']] },
    ...Array.from({ length: 5 }, () => ({ roles: ['escrow'], prepare: [['escrow', 'init']] })),
    { roles: ['seller'] },
    { roles: ['buyer'] },
    { roles: ['buyer'] }
  ]
  say(`starting ${specs.length} keyfair node processes on 127.0.0.1 (an agency, 5 escrows, a seller, 2 buyers) ...`)
  // one passphrase per repo: it seals the agency's, escrows' and seller's keys and the devices
  const swarm = await Swarm.start({ nodes: specs, topology: 'star', env: { KEYFAIR_PASSPHRASE: PASSPHRASE }, baseDir: keep, keep: keep != null, onProgress: m => { say(`  ${m}`) } })
  process.once('SIGINT', () => { void swarm.stop().then(() => process.exit(130)) })
  try {
    const [agency, ...rest] = swarm.nodes
    const escrows = rest.slice(0, 5)
    const seller = rest[5]!
    const [buyerA, buyerB] = [rest[6]!, rest[7]!]
    const agencyAddr = agency!.addresses[0]!
    const name = new Map<string, string>([[seller.peerId, 'seller'], [buyerA.peerId, 'buyer A'], [buyerB.peerId, 'buyer B']])

    say('\n1. the agency certifies the escrows and the buyers\' sealed devices (one-time codes)')
    await Promise.all(escrows.map(async e => {
      const { code } = await cli(agency!, 'agency', 'enroll-code', '--for', 'escrow')
      await cli(e, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
    }))
    say(`   5 escrows enrolled: ${escrows.map(e => short(e.peerId)).join(', ')}`)
    await cli(seller, 'trust', '--agency', agencyAddr)
    for (const [label, buyer] of [['A', buyerA], ['B', buyerB]] as const) {
      const { deviceId } = await cli(buyer, 'device', 'init')
      const { code } = await cli(agency!, 'agency', 'enroll-code', '--for', 'device')
      await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)
      say(`   buyer ${label}: device ${deviceId} made its keys inside itself and was certified`)
    }

    say(`\n2. each escrow credits each buyer 1000 (a bank transfer in)`)
    await Promise.all(escrows.flatMap(e => [buyerA, buyerB].map(async b => cli(e, 'escrow', 'deposit', b.peerId, '1000'))))
    const balances = async (): Promise<Map<string, number>> => {
      const totals = new Map<string, number>([[seller.peerId, 0], [buyerA.peerId, 0], [buyerB.peerId, 0]])
      let open = 0
      for (const e of escrows) {
        const r = await cli(e, 'escrow', 'accounts')
        for (const a of r.accounts) if (totals.has(a.account)) totals.set(a.account, totals.get(a.account)! + a.balance)
        open += r.openHolds
      }
      totals.set('open holds', open)
      return totals
    }
    const before = await balances()

    say('\n3. the seller publishes a generated work, 3-of-5 escrows, device-bound (the default)')
    const original = join(dir, 'kind-of-blue.bin')
    await writeFile(original, randomBytes(WORK_BYTES))
    const published = await cli(seller, 'publish', original, '--title', 'Kind of Blue', '--tags', 'jazz,trumpet', '--price', String(PRICE), '--escrows', '3-of-5')
    say(`   content ${published.content} (${published.size} bytes), offer ${short(published.offer)}, ${PRICE} to each of 3 escrows`)
    say('   device-bound: each buyer\'s licence comes from the seller, so no escrows, not even all 5, learn the key')
    say('   (an --open offer would also sell with the seller offline, but any 3 escrows together could learn its key)')

    say('\n4. buyer A searches "jazz", buys 3-of-5, and seeds the ciphertext')
    const found = await cli(buyerA, 'search', 'jazz')
    const listing = found.offers.find((o: any) => o.offer === published.offer)
    if (listing == null) throw new Error('buyer A did not find the offer')
    say(`   found '${listing.title}' for ${listing.price} × ${listing.t} of ${listing.escrows} escrows, ${listing.providers} provider(s)`)
    const outA = join(dir, 'a.out')
    const boughtA = await cli(buyerA, 'buy', listing.offer, '--out', outA, '--seed')
    const okA = await sha256(outA) === await sha256(original)
    say(`   bought (${boughtA.bound ? 'device-bound licence from the seller' : 'open offer'}); escrows: ${boughtA.escrows.map((e: any) => `#${e.j} ${e.outcome}`).join(', ')}`)
    say(`   SHA-256 of the output ${okA ? 'equals' : 'DIFFERS FROM'} the original's`)
    if (!okA) throw new Error('buyer A\'s output differs from the original')
    const confirmedA = await cli(buyerA, 'confirm', boughtA.purchase)
    say(`   A confirms: ${confirmedA.escrows.map((e: any) => `#${e.j} ${e.state}`).join(', ')}`)

    say('\n5. buyer B finds the work through A, downloads the ciphertext from A alone, and gets its own licence from the seller')
    const foundB = await cli(buyerB, 'search', 'jazz')
    const listingB = foundB.offers.find((o: any) => o.offer === published.offer)
    if (listingB == null) throw new Error('buyer B did not find the offer')
    const outB = join(dir, 'b.out')
    const boughtB = await cli(buyerB, 'buy', listingB.offer, '--out', outB, '--from', buyerA.peerId)
    const fromA = boughtB.sources.every((x: any) => x.provider === buyerA.peerId)
    say(`   ciphertext ${fromA ? 'from A alone' : `from ${boughtB.sources.map((x: any) => short(x.provider)).join(', ')}`}; ${boughtB.bound ? 'a device-bound licence from the seller' : 'open offer'}; escrows: ${boughtB.escrows.map((e: any) => `#${e.j} ${e.outcome}`).join(', ')}`)
    const okB = await sha256(outB) === await sha256(original)
    say(`   SHA-256 of the output ${okB ? 'equals' : 'DIFFERS FROM'} the original's`)
    if (!okB || !fromA || boughtB.bound !== true) throw new Error('buyer B\'s purchase did not go as it should')
    await cli(buyerB, 'confirm', boughtB.purchase)

    say('\n6. balances across the 5 escrows (minor units)')
    const after = await balances()
    for (const [account, value] of after) {
      const was = before.get(account) ?? 0
      say(`   ${(name.get(account) ?? account).padEnd(10)} ${String(was).padStart(6)} → ${String(value).padStart(6)}  (${value - was >= 0 ? '+' : ''}${value - was})`)
    }
    const delta = (id: string): number => after.get(id)! - before.get(id)!
    if (delta(seller.peerId) !== 2 * 3 * PRICE || delta(buyerA.peerId) !== -3 * PRICE || delta(buyerB.peerId) !== -3 * PRICE || after.get('open holds') !== 0) {
      throw new Error('the balances did not move as they should')
    }
    say(`   seller +2 × ${3 * PRICE}, each buyer −${3 * PRICE}, no hold left open`)

    say('\n7. lending: A\'s licence file copied into B\'s device')
    const licenceB = join(buyerB.repo, 'device', 'licence', published.content)
    await rename(licenceB, `${licenceB}.own`)
    await copyFile(join(buyerA.repo, 'device', 'licence', published.content), licenceB)
    try {
      await cli(buyerB, 'play', published.content, '--out', join(dir, 'lent.out'))
      throw new Error('B played A\'s licence')
    } catch (err: any) {
      if (err.code !== 'ERR_RECORD_UNREADABLE') throw err
      say(`   B's device refuses it: ${err.code} (${err.message})`)
    } finally {
      await rename(`${licenceB}.own`, licenceB)
    }
    say('\ndemo complete')
  } finally {
    await swarm.stop()
    await rm(dir, { recursive: true, force: true })
    say(`stopped all ${swarm.nodes.length} node processes`)
    if (keep != null) say(`their repos are kept under ${keep}`)
  }
}

main().catch(err => {
  process.stderr.write(`demo failed: ${err.message}\n`)
  process.exit(1)
})
