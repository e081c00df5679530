// The node's own calls: identity, peers, status, the DHT, stopping.
import { keywordCid } from '../../discovery/keywords.ts'
import type { Routes } from './shared.ts'
import type { KeyfairNode } from '../../keyfair-node.ts'

type NodeCall = 'id' | 'peers' | 'status' | 'announce' | 'find' | 'providers' | 'stop'

/** `onStop` ends the process's node */
export function nodeRoutes (node: KeyfairNode, onStop: () => void): Routes<NodeCall> {
  return {
    id: async () => {
      const status = node.status()
      return { peerId: status.peerId, addresses: status.addresses }
    },
    peers: async () => ({ peers: node.peers() }),
    status: async () => node.status(),
    announce: async ({ contentId, keywords }, signal) => node.announce(contentId, keywords, signal),
    find: async ({ keyword, limit, timeoutMs }, signal) => {
      const cid = keywordCid(keyword)
      const providers = await node.find(keyword, { signal, limit, timeoutMs })
      return { keyword, cid: cid.toString(), providers }
    },
    providers: async ({ content, timeoutMs }, signal) => ({ content, providers: await node.findProviders(content, { signal, timeoutMs }) }),
    stop: async () => {
      setImmediate(onStop)
      return { stopping: true }
    }
  }
}
