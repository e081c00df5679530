import { execFile } from 'node:child_process'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'

export { isProcessAlive as isAlive } from '../../node/repo.ts'

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the real `keyfair` CLI in a child process (the Node 24 running the tests). */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise(resolve => {
    execFile(process.execPath, [KEYFAIR_BIN, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}
