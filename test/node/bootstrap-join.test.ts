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
import type { Libp2p, Startable } from '@libp2p/interface'
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

  it('a node whose bootstrap peer failed the routing table\'s first check still adds it once it answers', async function () {
    // kad-dht adds a connected peer once identify names the DHT protocol and the peer answers
    // a ping; on a busy machine either can time out, and kad-dht does not try again while the
    // connection stays open: one node of a 50-node bench swarm kept an empty table for minutes
    const hub = await startLibp2p()
    nodes.push(hub)
    // the ping service, like every libp2p service, is Startable: stopped, it handles no pings
    const hubPing = hub.services.ping as unknown as Startable
    await hubPing.stop()
    const node = await startLibp2p([hub.getMultiaddrs()[0]!.toString()])
    nodes.push(node)
    await waitFor(() => node.getConnections(hub.peerId).length > 0 && tableSize(hub) >= 1, 10_000, 'the node to connect and the hub to add it')
    await new Promise(resolve => setTimeout(resolve, 1000))
    assert.equal(tableSize(node), 0, 'the hub answered no ping: the node did not add it')
    await hubPing.start()
    await waitFor(() => tableSize(node) >= 1, 20_000, 'the node to add its bootstrap peer').catch((err: Error) => {
      throw new Error(`${err.message}: it knows ${tableSize(node)} peers`)
    })
  })
})
