// A node's sealed device runs as a child process and shares the node's compile cache
// (node/config.ts compileCacheEnv): the child must use the very directory the parent
// uses, or every device strips keyfair's TypeScript again until one of them exits.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

describe('compile cache shared with child processes', function () {
  this.timeout(60_000)
  let dir = ''

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'keyfair-cache-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('a child started with compileCacheEnv() reads and writes the parent\'s cache directory', async function () {
    const cache = join(dir, 'cache')
    const config = new URL('../../node/config.ts', import.meta.url).href
    const script = `
      import module from 'node:module'
      import { execFileSync } from 'node:child_process'
      module.enableCompileCache(${JSON.stringify(cache)})
      const { compileCacheEnv } = await import(${JSON.stringify(config)})
      const child = execFileSync(process.execPath, ['--input-type=module', '-e', "import m from 'node:module'; process.stdout.write(String(m.getCompileCacheDir()))"], { env: compileCacheEnv(), encoding: 'utf8' })
      process.stdout.write(JSON.stringify({ parent: module.getCompileCacheDir(), child }))
    `
    const file = join(dir, 'probe.mjs')
    await writeFile(file, script)
    const out = JSON.parse(execFileSync(process.execPath, [file], { encoding: 'utf8' }))
    assert.ok(out.parent.startsWith(cache), out.parent)
    assert.equal(out.child, out.parent)
    const nested = (await readdir(out.parent, { withFileTypes: true })).filter(e => e.isDirectory())
    assert.deepEqual(nested.map(e => e.name), [])
  })

  it('without a cache in this process, the environment is passed on unchanged', function () {
    const config = new URL('../../node/config.ts', import.meta.url).href
    const script = `
      import { getCompileCacheDir } from 'node:module'
      const { compileCacheEnv } = await import(${JSON.stringify(config)})
      const env = { KEEP: 'x' }
      process.stdout.write(JSON.stringify({ cache: getCompileCacheDir() ?? null, same: compileCacheEnv(env) === env }))
    `
    const { NODE_COMPILE_CACHE: _, ...env } = process.env
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' }))
    assert.deepEqual(out, { cache: null, same: true })
  })
})
