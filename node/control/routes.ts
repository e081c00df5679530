import { keywordCid } from '../discovery/keywords.ts'
import { BadRequestError } from '../errors.ts'
import { MAX_FIND_LIMIT, MAX_FIND_TIMEOUT_MS } from '../discovery/discovery.ts'
import type { KeyfairNode } from '../keyfair-node.ts'

export type Route = (body: unknown, signal: AbortSignal) => Promise<unknown>

export interface ControlRoutes {
  id: Route
  peers: Route
  status: Route
  announce: Route
  find: Route
  stop: Route
}

/** The control API's endpoints over a running node; `onStop` ends the process's node. */
export function controlRoutes (node: KeyfairNode, onStop: () => void): ControlRoutes {
  return {
    id: async () => {
      const status = node.status()
      return { peerId: status.peerId, addresses: status.addresses }
    },
    peers: async () => ({ peers: node.peers() }),
    status: async () => node.status(),
    announce: async (body, signal) => {
      const { contentId, keywords } = fields(body)
      if (typeof contentId !== 'string') throw new BadRequestError('contentId must be a string')
      if (!Array.isArray(keywords) || !keywords.every(k => typeof k === 'string')) throw new BadRequestError('keywords must be a list of strings')
      return node.announce(contentId, keywords, signal)
    },
    find: async (body, signal) => {
      const { keyword, limit, timeoutMs } = fields(body)
      if (typeof keyword !== 'string') throw new BadRequestError('keyword must be a string')
      const cid = keywordCid(keyword)
      const providers = await node.find(keyword, {
        signal,
        limit: optionalInt(limit, 'limit', 1, MAX_FIND_LIMIT),
        timeoutMs: optionalInt(timeoutMs, 'timeoutMs', 1, MAX_FIND_TIMEOUT_MS)
      })
      return { keyword, cid: cid.toString(), providers }
    },
    stop: async () => {
      setImmediate(onStop)
      return { stopping: true }
    }
  }
}

function fields (body: unknown): Record<string, unknown> {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('request body must be a JSON object')
  return body as Record<string, unknown>
}

function optionalInt (value: unknown, name: string, min: number, max: number): number | undefined {
  if (value == null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequestError(`${name} must be an integer in ${min}..${max}`)
  }
  return value
}
