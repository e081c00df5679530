// The control API's routes, assembled from each domain's: every route gets a request the
// contract in api.ts has already validated.
import { nodeRoutes } from './routes/node.ts'
import { marketRoutes } from './routes/market.ts'
import { deviceRoutes } from './routes/device.ts'
import { escrowRoutes } from './routes/escrow.ts'
import { agencyRoutes } from './routes/agency.ts'
import type { Handler, Routes } from './routes/shared.ts'
import type { CallName } from './api.ts'
import type { ProgressEvent } from './progress.ts'
import type { KeyfairNode } from '../keyfair-node.ts'

export type { Handler } from './routes/shared.ts'

/** A route as the server calls it: a body already validated for its call */
export type Route = (body: unknown, signal: AbortSignal, progress: (event: ProgressEvent) => void) => Promise<unknown>

/**
 * Every call's route; `log.level` is served by a daemon that keeps a log file, `ui.login` by
 * the control server, which holds the web UI's sessions
 */
export type ControlRoutes = Routes<Exclude<CallName, 'log.level' | 'ui.login'>> & { 'log.level'?: Handler<'log.level'> }

/** The control API's endpoints over a running node; `onStop` ends the process's node. */
export function controlRoutes (node: KeyfairNode, onStop: () => void): ControlRoutes {
  return {
    ...nodeRoutes(node, onStop),
    ...marketRoutes(node),
    ...deviceRoutes(node),
    ...escrowRoutes(node),
    ...agencyRoutes(node)
  }
}
