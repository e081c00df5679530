// What a streamed control answer may carry as progress: keyfair's typed events, copied field
// by field; anything else (a library's event, an object whose toJSON throws) is dropped.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatBytes } from '../../node/format.ts'
import { ControlClient } from '../../node/control/client.ts'
import { progressLine } from '../../node/control/progress.ts'
import { ControlServer } from '../../node/control/server.ts'
import { Repo } from '../../node/repo.ts'
import type { ControlRoutes, Route } from '../../node/control/routes.ts'

/** An object that cannot be serialised, as libp2p's dial objects could not */
const unserialisable = (): object => ({ toJSON () { throw new Error('toJSON not set') } })

/** Shaped like the progress events libp2p emits while it dials */
const dialEvent = (): Event => new CustomEvent('dial-queue:add-to-dial-queue', { detail: { peer: unserialisable(), signal: new AbortController().signal } })

describe('progress events crossing the control API', function () {
  it('keeps the typed fields of every phase and drops the rest', function () {
    assert.deepEqual(progressLine({ phase: 'encrypt', bytes: 1024, total: 4096, secret: 'x', chunks: 1 }), { phase: 'encrypt', bytes: 1024, total: 4096 })
    assert.deepEqual(progressLine({ phase: 'escrows', escrows: ['a', 'b'] }), { phase: 'escrows', escrows: ['a', 'b'] })
    assert.deepEqual(progressLine({ phase: 'announce', detail: unserialisable() }), { phase: 'announce' })
    assert.deepEqual(progressLine({ phase: 'download', bytes: 1, total: 2, providers: 3, provider: 'p' }), { phase: 'download', bytes: 1, total: 2, providers: 3, provider: 'p' })
    assert.deepEqual(progressLine({ phase: 'escrow', j: 2, peer: 'p', state: 'refused', code: 'ERR_CERT_REVOKED', have: 1, need: 2 }), { phase: 'escrow', j: 2, peer: 'p', state: 'refused', code: 'ERR_CERT_REVOKED', have: 1, need: 2 })
    assert.deepEqual(progressLine({ phase: 'escrow', j: 1, peer: 'p', state: 'asked', have: 0, need: 2 }), { phase: 'escrow', j: 1, peer: 'p', state: 'asked', have: 0, need: 2 })
    assert.deepEqual(progressLine({ phase: 'licence', bound: true }), { phase: 'licence', bound: true })
    assert.deepEqual(progressLine({ phase: 'play', bytes: 10 }), { phase: 'play', bytes: 10 })
  })

  it('drops unknown phases, libp2p-like events, wrong field types and objects that cannot serialise', function () {
    assert.equal(progressLine(dialEvent()), undefined)
    assert.equal(progressLine(unserialisable()), undefined)
    assert.equal(progressLine({ type: 'dial-queue:already-connected', detail: unserialisable() }), undefined)
    assert.equal(progressLine({ phase: 'dial', bytes: 1 }), undefined)
    assert.equal(progressLine({ phase: 'encrypt', bytes: unserialisable(), total: 1 }), undefined)
    assert.equal(progressLine({ phase: 'encrypt', bytes: Number.NaN, total: 1 }), undefined)
    assert.equal(progressLine({ phase: 'escrow', j: 1, peer: 'p', state: 'paid', have: 0, need: 1 }), undefined)
    assert.equal(progressLine({ phase: 'escrows', escrows: [unserialisable()] }), undefined)
    assert.equal(progressLine(['phase', 'announce']), undefined)
    assert.equal(progressLine('announce'), undefined)
    assert.equal(progressLine(null), undefined)
    // a getter is never run: only own data properties are read
    let ran = false
    const sly = { phase: 'licence', get bound () { ran = true; return true } }
    assert.equal(progressLine(sly), undefined)
    assert.equal(ran, false)
  })

  it('streams only typed events to a client, and the result after them', async function () {
    const dir = await mkdtemp(join(tmpdir(), 'keyfair-progress-'))
    const repo = new Repo(join(dir, 'repo'))
    await repo.init()
    const publish: Route = async (_body, _signal, progress) => {
      // what a callback handed down into libp2p would have received
      const foreign: unknown[] = [dialEvent(), unserialisable(), { phase: 'encrypt', bytes: unserialisable(), total: 1 }]
      for (const event of foreign) progress(event as never)
      progress({ phase: 'encrypt', bytes: 512, total: 1024 })
      progress({ phase: 'announce' })
      return { published: true }
    }
    const server = new ControlServer({ repo, routes: { publish } as unknown as ControlRoutes, port: 0 })
    await server.start()
    try {
      const events: unknown[] = []
      const result = await new ControlClient(repo).stream('publish', { file: join(dir, 'work'), title: 'work', tags: [], price: 1, t: 1, n: 1, escrows: [] }, e => events.push(e), { timeoutMs: 10_000 })
      assert.deepEqual(result, { published: true })
      assert.deepEqual(events, [{ phase: 'encrypt', bytes: 512, total: 1024 }, { phase: 'announce' }])
    } finally {
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('shows bytes in MiB and GiB', function () {
    assert.equal(formatBytes(512), '512 B')
    assert.equal(formatBytes(3 * 2 ** 20 + 2 ** 19), '3.5 MiB')
    assert.equal(formatBytes(5 * 2 ** 30), '5.0 GiB')
  })
})
