// libp2p's connection monitor pings every connection over the ping protocol, and kad-dht
// pings a peer before adding it to its routing table: two outbound ping streams on one
// connection at once. @libp2p/ping allows one by default, so the second failed, and when
// that was the monitor's, it aborted the connection.
import assert from 'node:assert/strict'
import { startLibp2p, waitFor } from '../helpers/nodes.ts'
import type { BaseServices } from '../../node/libp2p.ts'
import type { Libp2p } from '@libp2p/interface'

const PING_PROTOCOL = '/ipfs/ping/1.0.0'

describe('pings on one connection', function () {
  this.timeout(30_000)
  const nodes: Array<Libp2p<BaseServices>> = []

  afterEach(async function () {
    await Promise.all(nodes.splice(0).map(async n => n.stop()))
  })

  it('a ping succeeds while another ping stream is open on the same connection', async function () {
    const a = await startLibp2p()
    nodes.push(a)
    const b = await startLibp2p([a.getMultiaddrs()[0]!.toString()])
    nodes.push(b)
    await waitFor(() => b.getConnections(a.peerId).length > 0, 10_000, 'b to connect to a')
    const connection = b.getConnections(a.peerId)[0]!
    // what the connection monitor holds while its ping is under way
    const held = await connection.newStream(PING_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
    try {
      const rtt = await b.services.ping.ping(a.peerId, { signal: AbortSignal.timeout(5_000) })
      assert.ok(rtt >= 0)
      assert.equal(connection.status, 'open')
    } finally {
      held.abort(new Error('test done'))
    }
  })
})
