// Hostile peers (docs/security.md) on the market protocols: malformed, truncated and oversized frames reset
// only their stream; wrong shapes get an error frame; the node keeps serving.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as lp from 'it-length-prefixed'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { encodeObject } from '../../device/objects/codec.ts'
import { KeyfairNode } from '../../node/keyfair-node.ts'
import { Repo } from '../../node/repo.ts'
import { CONTENT_LIMITS, CONTENT_PROTOCOL, fetchManifest } from '../../protocols/market/content.ts'
import { LICENSE_LIMITS, LICENSE_PROTOCOL, requestLicence } from '../../protocols/market/license.ts'
import { OFFER_LIMITS, OFFER_PROTOCOL, requestOffers } from '../../protocols/market/offer.ts'
import { FrameKind, FrameStream } from '../../protocols/toolkit/index.ts'
import { unsignedVarint, waitFor } from '../helpers/nodes.ts'
import { FAST_KDF, TEST_PASSPHRASE } from '../helpers/keys.ts'
import type { Stream } from '@libp2p/interface'

const SOME_CID = CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

describe('market protocols under malformed frames', function () {
  this.timeout(60_000)
  let dir: string
  const nodes: KeyfairNode[] = []

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-market-frames-'))
    for (const [name, roles] of [['seller', ['seller']], ['client', []]] as const) {
      const repo = new Repo(join(dir, name))
      await repo.init()
      const node = new KeyfairNode({ repo, roles: [...roles], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], passphrase: TEST_PASSPHRASE, keyStoreKdf: FAST_KDF })
      await node.start()
      nodes.push(node)
    }
  })

  after(async function () {
    await Promise.all(nodes.map(async n => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  it('resets oversized, undecodable and truncated frames on offer, content and license, and keeps serving', async function () {
    const [seller, client] = nodes as [KeyfairNode, KeyfairNode]
    const target = multiaddr(seller.status().addresses[0]!)
    const open = async (protocol: string): Promise<Stream> => client.libp2p.dialProtocol(target, protocol, { signal: AbortSignal.timeout(5000) })
    for (const [protocol, limits] of [[OFFER_PROTOCOL, OFFER_LIMITS], [CONTENT_PROTOCOL, CONTENT_LIMITS], [LICENSE_PROTOCOL, LICENSE_LIMITS]] as const) {
      const oversized = await open(protocol)
      // only the length prefix of an oversized frame: the node must not wait for the rest
      oversized.send(unsignedVarint(limits.maxFrameBytes + 1))
      for (const body of [Uint8Array.of(FrameKind.MESSAGE, 0xff, 0xff, 0x00), Uint8Array.of(9, 1, 2, 3)]) {
        const stream = await open(protocol)
        stream.send(lp.encode.single(body))
        await waitFor(() => stream.status !== 'open', 10_000, `${protocol} to end a bad frame`)
        assert.equal(stream.status, 'reset')
      }
      const truncated = await open(protocol)
      truncated.send(lp.encode.single(Uint8Array.of(FrameKind.MESSAGE, ...encodeObject({ v: 1, content: SOME_CID }))).subarray().subarray(0, 5))
      await truncated.close()
      await waitFor(() => truncated.status !== 'open', 10_000, `${protocol} to end a truncated request`)
      const frames = new FrameStream(await open(protocol), limits)
      await frames.writeMessage({ v: 1, content: 'not a cid', offer: 7, keyword: 3 })
      await assert.rejects(frames.readMessage(), (err: any) => err.code === 'ERR_BAD_MESSAGE')
      await waitFor(() => oversized.status !== 'open', 10_000, `${protocol} to reset an oversized frame`)
      assert.equal(oversized.status, 'reset')
    }
    // still serving, with clear refusals for what it does not have
    assert.deepEqual(await requestOffers({ connectionManager: client.streams }, target, { content: SOME_CID }), [])
    await assert.rejects(fetchManifest({ connectionManager: client.streams }, target, SOME_CID), { code: 'ERR_UNKNOWN_CONTENT' })
    await assert.rejects(requestLicence({ connectionManager: client.streams }, target, { offer: SOME_CID, signing: 'x', encryption: 'y' }), { code: 'ERR_UNKNOWN_OFFER' })
  })
})
