/**
 * `npm run swarm -- --nodes 20 --roles buyer --topology tree`: a local swarm of real
 * keyfair node processes on loopback (node/devnet/swarm.ts), up until Ctrl-C.
 */
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Swarm } from '../node/devnet/swarm.ts'
import type { Topology } from '../node/devnet/swarm.ts'

export * from '../node/devnet/swarm.ts'

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '5' },
      roles: { type: 'string', default: 'buyer' },
      topology: { type: 'string', default: 'tree' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) {
    process.stdout.write('usage: npm run swarm -- [--nodes N] [--roles buyer,seller,...] [--topology tree|star|chain] [--json]\n')
    return
  }
  const count = Number(values.nodes)
  if (!Number.isInteger(count) || count < 1 || count > 200) throw new Error('--nodes must be an integer 1..200')
  if (!['star', 'tree', 'chain'].includes(values.topology)) throw new Error('--topology must be tree, star or chain')
  const roles = values.roles.split(',')
  const started = Date.now()
  const swarm = await Swarm.start({
    nodes: Array.from({ length: count }, () => ({ roles })),
    topology: values.topology as Topology,
    onProgress: m => { if (!values.json) process.stderr.write(`swarm: ${m}\n`) }
  })
  const shutdown = (): void => {
    void swarm.stop().then(() => { process.exit(0) })
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  if (values.json) {
    process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, nodes: swarm.nodes.map(n => ({ index: n.index, pid: n.pid, peerId: n.peerId, addresses: n.addresses, repo: n.repo, roles: n.roles, parent: n.parent })) }) + '\n')
  } else {
    for (const n of swarm.nodes) {
      process.stdout.write(`#${n.index} ${n.peerId} pid ${n.pid} ${n.roles.join(',')}\n    ${n.addresses.join(' ')}\n    repo ${n.repo}  (keyfair --repo ${n.repo} status)\n`)
    }
    process.stdout.write(`${count} nodes up in ${Date.now() - started} ms; Ctrl-C stops them all\n`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`swarm: ${err.message}\n`)
    process.exit(1)
  })
}
