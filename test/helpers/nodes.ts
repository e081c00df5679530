import { createServer } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { Libp2p } from '@libp2p/interface'

/** A started in-process keyfair libp2p node on a random loopback port. */
export async function startLibp2p (bootstrap: string[] = []): Promise<Libp2p<BaseServices>> {
  const node = await createKeyfairLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    services: {}
  })
  await node.start()
  return node
}

/** A loopback TCP port free a moment ago: for a node that must listen on a port known in advance */
export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address != null ? address.port : 0) })
    })
  })
}

export async function waitFor (condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** LEB128, as the frames' length prefix */
export function unsignedVarint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Uint8Array.from(out)
}
