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

if (major >= 24) {
  // V8's code cache (and the stripped TypeScript) on disk: later starts skip compiling.
  // Kept beside the code, not in a shared temporary directory another user could seed.
  module.enableCompileCache?.(join(here, '..', '..', 'node_modules', '.cache', 'keyfair-compile'))
  const { main } = await import(join(here, '..', 'cli.ts'))
  // every module is loaded now: write their entries at once, not only at exit, which a
  // node that runs for days (or the exec that gives it its V8 flags) may never reach
  module.flushCompileCache?.()
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
