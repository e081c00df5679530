import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BENCH = fileURLToPath(new URL('../scripts/bench.ts', import.meta.url))

describe('npm run bench -- --quick (smoke: completes, not the targets)', function () {
  this.timeout(120_000)

  it('prints every row and writes one JSON file of results', async function () {
    const out = await mkdtemp(join(tmpdir(), 'keyfair-bench-out-'))
    try {
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [BENCH, '--quick', '--out', out], { timeout: 110_000 }, (err, stdout, stderr) => {
          if (err != null) reject(new Error(`bench failed: ${stderr}`))
          else resolve(stdout)
        })
      })
      const files = await readdir(out)
      assert.equal(files.length, 1)
      const results = JSON.parse(await readFile(join(out, files[0]!), 'utf8'))
      const ids = results.rows.map((r: any) => r.id)
      assert.deepEqual(ids, ['F1', 'C1', 'C2', 'C3', 'E1', 'D1'])
      for (const r of results.rows) {
        assert.ok(r.value > 0 && r.baseline > 0 && Number.isFinite(r.ratio), `${r.id} measured`)
        assert.match(stdout, new RegExp(`^${r.id} `, 'm'))
      }
    } finally {
      await rm(out, { recursive: true, force: true })
    }
  })
})
