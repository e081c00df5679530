/**
 * `npm start`: a real local swarm on loopback, driven through the keyfair CLI.
 * Today it shows the foundation: 8 node processes (an agency, 3 escrows, a
 * seller, 3 buyers) join a private kad-dht, the seller announces a work under
 * its keywords, and every buyer finds it by keyword. Every process it starts
 * is stopped before it exits.
 */
import { execFile } from 'node:child_process'
import { Swarm, KEYFAIR_BIN } from './swarm.ts'

function cli (repo: string, ...args: string[]): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [KEYFAIR_BIN, '--repo', repo, '--json', ...args], (err, stdout, stderr) => {
      if (err != null) reject(new Error(stderr.trim() || err.message))
      else resolve(JSON.parse(stdout))
    })
  })
}

const say = (line: string): void => { process.stdout.write(line + '\n') }

async function main (): Promise<void> {
  const roles = [['agency'], ['escrow'], ['escrow'], ['escrow'], ['seller'], ['buyer'], ['buyer'], ['buyer']]
  say(`starting ${roles.length} keyfair nodes on 127.0.0.1 ...`)
  const swarm = await Swarm.start({ nodes: roles.map(r => ({ roles: r })), topology: 'star', onProgress: m => { say(`  ${m}`) } })
  const stop = async (): Promise<void> => { await swarm.stop() }
  process.once('SIGINT', () => { void stop().then(() => process.exit(130)) })
  try {
    for (const n of swarm.nodes) say(`  #${n.index} ${n.roles.join(',').padEnd(7)} ${n.peerId}  pid ${n.pid}`)
    const seller = swarm.nodes.find(n => n.roles.includes('seller'))!
    const contentId = 'bafkreia72fyadnv6uypovhb63cxbhsnalxplztghyhsjwjlhzglmrf5pom'
    say(`\nseller announces ${contentId} as "Kind of Blue" (jazz, trumpet)`)
    const announced = await cli(seller.repo, 'announce', contentId, 'Kind of Blue', 'jazz,trumpet')
    say(`  keywords ${announced.keywords.join(', ')}; ${announced.provided.filter((p: any) => p.ok).length}/${announced.provided.length} keys provided`)
    for (const buyer of swarm.nodes.filter(n => n.roles.includes('buyer'))) {
      const t0 = Date.now()
      const found = await cli(buyer.repo, 'find', 'Jazz', '--timeout', '15000')
      const ok = found.providers.some((p: any) => p.peerId === seller.peerId)
      say(`  buyer #${buyer.index} searched 'Jazz': ${found.providers.length} provider(s) in ${Date.now() - t0} ms ${ok ? '(the seller)' : '(seller NOT found)'}`)
      if (!ok) throw new Error(`buyer #${buyer.index} did not find the seller`)
    }
    say('\nthe blind-key purchase flow (escrows, sealed device) is not built yet; see README "Status"')
  } finally {
    await stop()
    say(`stopped all ${swarm.nodes.length} node processes`)
  }
}

main().catch(err => {
  process.stderr.write(`demo failed: ${err.message}\n`)
  process.exit(1)
})
