// The keyfair CLI on a swarm node's repo, with --json: resolves to its JSON answer, or
// rejects with the error's code and message as the CLI printed them (and `error`, all of it).
import { execFile } from 'node:child_process'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'

export type SwarmCli = (node: SwarmNode, ...args: string[]) => Promise<any>

export function swarmCli (passphrase: string): SwarmCli {
  return async (node, ...args) => new Promise((resolve, reject) => {
    execFile(process.execPath, [KEYFAIR_BIN, '--repo', node.repo, '--json', ...args], { env: { ...process.env, KEYFAIR_PASSPHRASE: passphrase }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err == null) return resolve(JSON.parse(stdout))
      try {
        const { error } = JSON.parse(stderr)
        // the whole error object too: a refused purchase lists every escrow and its reason
        reject(Object.assign(new Error(error.message), { code: error.code, error }))
      } catch {
        reject(new Error(stderr.trim() || err.message))
      }
    })
  })
}
