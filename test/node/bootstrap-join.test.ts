// Joining the DHT through a bootstrap peer that answers late. kad-dht's own self-query
// then asks only peers closer to the node than the one that named them: such a node
// stopped at its bootstrap peer and that peer's neighbour (2 peers in 3 runs of 5) until
// the routing table's refresh 5 minutes later. The node refreshes its table on joining.
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createKeyfairLibp2p } from '../../node/libp2p.ts'
import { freePort, startLibp2p, waitFor } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { Libp2p } from '@libp2p/interface'
import type { SingleKadDHT } from '@libp2p/kad-dht'

const tableSize = (node: Libp2p<BaseServices>): number => (node.services.dht as unknown as SingleKadDHT).routingTable.size

describe('joining the DHT through a bootstrap peer', function () {
  this.timeout(60_000)
  const nodes: Array<Libp2p<BaseServices>> = []

  afterEach(async function () {
    await Promise.all(nodes.splice(0).map(async n => n.stop()))
  })

  it('a node whose bootstrap peer comes up after its own first self-query still learns the swarm', async function () {
    // a small swarm around a hub, settled
    const hub = await startLibp2p()
    nodes.push(hub)
    const hubAddress = hub.getMultiaddrs()[0]!.toString()
    for (let i = 0; i < 3; i++) nodes.push(await startLibp2p([hubAddress]))
    await waitFor(() => tableSize(hub) >= 3, 15_000, 'the hub to know the swarm')

    // the late node's bootstrap peer is not listening yet when it starts
    const lateKey = await generateKeyPair('Ed25519')
    const port = await freePort()
    const bridge = await createKeyfairLibp2p({ privateKey: lateKey, listen: [`/ip4/127.0.0.1/tcp/${port}`], bootstrap: [hubAddress], services: {} })
    const late = await startLibp2p([`/ip4/127.0.0.1/tcp/${port}/p2p/${peerIdFromPrivateKey(lateKey).toString()}`])
    nodes.push(late)
    // past the late node's own first self-query, which found nobody
    await new Promise(resolve => setTimeout(resolve, 2500))
    assert.equal(tableSize(late), 0)
    await bridge.start()
    nodes.push(bridge)
    // its bootstrap peer, the hub and the hub's three other peers
    await waitFor(() => tableSize(late) >= 5, 20_000, 'the late node to learn the swarm').catch((err: Error) => {
      throw new Error(`${err.message}: it knows ${tableSize(late)} peers`)
    })
  })
})
