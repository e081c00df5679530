#!/usr/bin/env node
// Entry point for `keyfair` / `npx keyfair`. Plain JavaScript so that an older
// global Node (the machines have 20) can still read it and hand over to the
// Node 24 that `npm install` put in node_modules (the `node` devDependency).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import module from 'node:module'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const major = Number(process.versions.node.split('.')[0])

/**
 * Long-running processes (a node, its device) stream chunks through short-lived
 * buffers; a young generation of V8's default size lets tens of megabytes of them
 * wait for collection. One semi-space of 1 MiB measured 50 MB less resident memory
 * for an idle node and 80 MB less at the peak of a purchase. A supervisor that talks to
 * the node over an IPC channel passes the flag itself (the channel does not survive exec).
 */
const LONG_RUNNING_FLAGS = ['--max-semi-space-size=1']

if (major >= 24 && process.argv.includes('start') && typeof process.execve === 'function' && process.channel == null &&
  !LONG_RUNNING_FLAGS.every(flag => process.execArgv.includes(flag))) {
  // the same process (same pid) over again, with the flags V8 only takes at start-up
  process.execve(process.execPath, [process.execPath, ...LONG_RUNNING_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], process.env)
}

if (major >= 24) {
  // V8's code cache (and the stripped TypeScript) on disk: later starts skip compiling.
  // Kept beside the code, not in a shared temporary directory another user could seed.
  module.enableCompileCache?.(join(here, '..', '..', 'node_modules', '.cache', 'keyfair-compile'))
  const { main } = await import(join(here, '..', 'cli.ts'))
  await main(process.argv)
} else {
  const pinned = join(here, '..', '..', 'node_modules', 'node', 'bin', 'node')
  if (!existsSync(pinned)) {
    process.stderr.write(`keyfair: needs Node >= 24 (this is ${process.version}); run "npm install" in the keyfair directory\n`)
    process.exit(1)
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.on(signal, () => { child.kill(signal) })
  }
  child.on('exit', (code, signal) => {
    process.exit(code ?? 128 + (signal == null ? 0 : constants.signals[signal]))
  })
}
