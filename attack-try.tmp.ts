import { TargetWorld } from './scripts/fuzz/world.ts'
import { stallAttack } from './scripts/fuzz/attack.ts'
const world = await TargetWorld.create({ account: '12D3KooWFgc6GWjbgBWv57Rmw46e4ZnDNPwBkmhL89q3hFui2baM' })
try {
  const MiB = 1024 * 1024
  for (const [protocol, frameBytes, peers, per, send] of [
    ['/keyfair/escrow/settle/1.0.0', 40 * MiB, 4, 8, 40 * MiB - 1],
    ['/keyfair/content/1.0.0', 16 * MiB, 4, 8, 16 * MiB - 1],
    ['/keyfair/escrow/unblind/1.0.0', 256 * 1024 - 16, 8, 64, 256 * 1024 - 17]
  ] as const) {
    const r = await stallAttack(world.escrow, world.escrow, { protocol, peers, streamsPerPeer: per, frameBytes, sendBytes: send, holdMs: 5000 })
    console.log(protocol, JSON.stringify(r))
  }
} finally { await world.stop() }
