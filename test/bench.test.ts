import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findPgBinaries } from './helpers/postgres.ts'

const BENCH = fileURLToPath(new URL('../scripts/bench.ts', import.meta.url))

describe('npm run bench -- --quick (smoke: completes, not the targets)', function () {
  this.timeout(180_000)

  it('prints the machine and the eight rows with ratio, target and result (P7 skipped without PostgreSQL), and writes a JSON file of results and its SVG chart', async function () {
    const out = await mkdtemp(join(tmpdir(), 'keyfair-bench-out-'))
    try {
      const started = Date.now()
      const stdout = await new Promise<string>((resolve, reject) => {
        // key stores at the cheapest KDF: the bench measures the marketplace, not node starts
        execFile(process.execPath, [BENCH, '--quick', '--out', out], { timeout: 170_000, env: { ...process.env, KEYFAIR_KDF_N: '16384' } }, (err, stdout, stderr) => {
          if (err != null) reject(new Error(`bench failed: ${stderr.slice(-4000)}`))
          else resolve(stdout)
        })
      })
      const seconds = (Date.now() - started) / 1000
      const files = (await readdir(out)).sort()
      assert.equal(files.length, 2)
      // the chart beside the JSON, under the same name
      assert.match(files[0]!, /^results-.*\.json$/)
      assert.equal(files[1], files[0]!.replace(/\.json$/, '.svg'))
      const results = JSON.parse(await readFile(join(out, files[0]!), 'utf8'))
      assert.ok(results.machine.cpus > 0 && results.machine.memoryGiB > 0, 'the machine: cores and memory')
      assert.match(stdout, /^machine: Node v\d+.* cores.* GiB memory$/m)
      const svg = await readFile(join(out, files[1]!), 'utf8')
      const ids = ['P1', 'P1c', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7']
      for (const id of ids) assert.match(svg, new RegExp(`class="bar [a-z]+" data-row="${id}"`))
      assert.deepEqual(results.rows.map((r: any) => r.id), ids)
      // P7 needs a PostgreSQL server: without its binaries the row says so instead of failing
      const p7 = results.rows.find((r: any) => r.id === 'P7')
      if (findPgBinaries() == null) {
        assert.equal(p7.skipped, 'no PostgreSQL')
        assert.match(stdout, /^P7 .*skipped: no PostgreSQL/m)
      } else {
        assert.equal(p7.skipped, undefined)
      }
      for (const r of results.rows.filter((r: any) => r.skipped == null)) {
        assert.ok(r.value > 0 && Number.isFinite(r.ratio), `${r.id} measured`)
        assert.ok(r.id === 'P5' || r.baseline > 0, `${r.id} has its baseline`)
        assert.equal(typeof r.pass, 'boolean')
        assert.match(stdout, new RegExp(`^${r.id} .*(pass|MISS)`, 'm'))
      }
      // where P1's time goes: CPU of each process of the purchase and of the raw transfer
      const cpu = results.rows.find((r: any) => r.id === 'P1').details.cpuMsPerRun
      for (const name of ['buyer', 'device', 'seller']) assert.ok(cpu.purchase[name] > 0, `P1 CPU of the ${name}`)
      // the thread that runs libp2p is one of the buyer node's threads
      assert.ok(cpu.purchase.buyerMainThread > 0 && cpu.purchase.buyerMainThread <= cpu.purchase.buyer, 'P1 CPU of the buyer node\'s main thread')
      for (const name of ['server', 'fetcher']) assert.ok(cpu.raw[name] > 0, `raw CPU of the ${name}`)
      // P1c is P1's runs again: the buyer node's CPU in each against the raw fetcher's
      const p1c = results.rows.find((r: any) => r.id === 'P1c')
      assert.equal(p1c.samples.value.length, results.rows.find((r: any) => r.id === 'P1').samples.value.length)
      assert.equal(p1c.pass, p1c.ratio <= 1.6)
      // P5 passes only if the idle node is small enough too
      const p5 = results.rows.find((r: any) => r.id === 'P5')
      assert.equal(p5.target, '≤ 160 MB; idle node ≤ 120 MB')
      assert.equal(p5.pass, p5.value <= 160 && p5.details.beforeBuyingMB.node <= 120)
      assert.match(stdout, /results in /)
      // the aim is under a minute; CI machines are shared, so only a loose bound here
      assert.ok(seconds < 150, `the quick run took ${seconds} s`)
    } finally {
      await rm(out, { recursive: true, force: true })
    }
  })
})
