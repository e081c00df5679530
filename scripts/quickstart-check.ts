/**
 * `npm run quickstart-check`: runs the README's quick start, word for word, with bash, in
 * this checkout, its temporary files under a fresh directory (TMPDIR). Exits 0 when the
 * block ran to its end; whatever it left running is stopped (its process group), and the
 * directory removed.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TIMEOUT_MS = 300_000

/** The first ```sh block after the "## Quick start" heading */
export function quickStartBlock (readme: string): string {
  const section = readme.split(/^## Quick start\s*$/m)[1]
  const block = section == null ? null : /^```sh\n([\s\S]*?)^```$/m.exec(section.split(/^## /m)[0]!)
  if (block == null) throw new Error('README.md has no ```sh block under "## Quick start"')
  return block[1]!
}

async function runBlock (script: string, dir: string): Promise<{ code: number | null, output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir }
  delete env.KEYFAIR_REPO // the block sets it; one from the caller's shell must not leak in
  // a process group of its own: whatever the block starts in the background is stopped with it
  const child = spawn('bash', ['-e', '-c', script], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); process.stdout.write(d) })
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); process.stderr.write(d) })
  const timer = setTimeout(() => { stopGroup(child.pid!, 'SIGTERM') }, TIMEOUT_MS)
  const code = await new Promise<number | null>(resolve => { child.once('exit', resolve) })
  clearTimeout(timer)
  await stopLeftovers(child.pid!)
  return { code, output }
}

function stopGroup (pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal)
    return true
  } catch {
    return false // ESRCH: nothing of the group is left
  }
}

async function stopLeftovers (pgid: number): Promise<void> {
  if (!stopGroup(pgid, 'SIGTERM')) return
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline && stopGroup(pgid, 0)) await new Promise(resolve => setTimeout(resolve, 200))
  stopGroup(pgid, 'SIGKILL')
  process.stderr.write('quickstart-check: the block left processes running; they were stopped\n')
}

async function main (): Promise<void> {
  const script = quickStartBlock(await readFile(join(ROOT, 'README.md'), 'utf8'))
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-quickstart-'))
  const started = Date.now()
  try {
    const { code } = await runBlock(script, dir)
    if (code !== 0) throw new Error(`the quick start failed (exit ${code})`)
    process.stdout.write(`quickstart-check: the README's quick start ran to its end in ${Date.now() - started} ms\n`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`quickstart-check: ${err.message}\n`)
    process.exit(1)
  })
}
