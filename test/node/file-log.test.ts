// The node log file in-process: levels, masking, rotation, and the internal error of the
// control API naming the file (a real HTTP server on 127.0.0.1).
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { ControlServer } from '../../node/control/server.ts'
import { installFileLog, namespaceMatcher } from '../../node/log/file-log.ts'
import { levelNamespaces, logFilePath, namespaceLevel } from '../../node/log/levels.ts'
import { redact } from '../../node/log/redact.ts'
import { RotatingFile } from '../../node/log/rotating-file.ts'
import { Repo } from '../../node/repo.ts'
import type { ControlRoutes } from '../../node/control/routes.ts'
import type { FileLog } from '../../node/log/file-log.ts'

describe('node log file', function () {
  let dir: string
  let fileLog: FileLog | undefined

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-log-'))
  })

  afterEach(async function () {
    fileLog?.close()
    fileLog = undefined
    await rm(dir, { recursive: true, force: true })
  })

  it('a level admits its own namespaces and those above it', function () {
    assert.equal(namespaceLevel('keyfair:escrow:error'), 'error')
    assert.equal(namespaceLevel('keyfair:daemon:info'), 'info')
    assert.equal(namespaceLevel('keyfair:escrow'), 'debug')
    const warn = namespaceMatcher(levelNamespaces('warn'))
    assert.ok(warn('keyfair:a:error') && warn('keyfair:a:b:warn'))
    assert.ok(!warn('keyfair:a:info') && !warn('keyfair:a') && !warn('libp2p:tcp:error'))
    const debug = namespaceMatcher(levelNamespaces('debug'))
    assert.ok(debug('keyfair:a') && debug('keyfair:a:info') && !debug('libp2p:tcp'))
    assert.ok(!namespaceMatcher('keyfair:*,-keyfair:noisy')('keyfair:noisy'))
  })

  it('writes what its level admits, from loggers made before and after, with the level changed live', async function () {
    const debugBefore = process.env.DEBUG
    const early = logger('keyfair:test-early')
    fileLog = installFileLog({ repoPath: dir, level: 'info' })
    const late = logger('keyfair:test-late')
    const info = logger('keyfair:test-late:info')
    early('early debug line')
    early.error('early error line - %s', 'E1')
    info('info line %d', 42)
    late('late debug line')
    fileLog.setLevel('debug')
    late('late debug line after the change')
    fileLog.setLevel('error')
    info('info line after error level')
    late.error('late error line')
    const text = await readFile(logFilePath(dir), 'utf8')
    assert.match(text, /ERROR keyfair:test-early:error early error line - E1/)
    assert.match(text, /INFO  keyfair:test-late:info info line 42/)
    assert.match(text, /DEBUG keyfair:test-late late debug line after the change/)
    assert.match(text, /ERROR keyfair:test-late:error late error line/)
    assert.doesNotMatch(text, /early debug line|late debug line\n|after error level/)
    // plain text: none of the terminal's colours
    assert.doesNotMatch(text, /\u001b\[/)
    // DEBUG is the user's: the file's namespaces are not exported to child processes
    assert.equal(process.env.DEBUG, debugBefore)
  })

  it('masks the passphrase, the token and PEM private keys', async function () {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----'
    assert.equal(redact(`a ${pem} b`), 'a [redacted private key] b')
    assert.equal(redact('-----BEGIN RSA PRIVATE KEY-----\nMIIE'), '[redacted private key]')
    fileLog = installFileLog({ repoPath: dir, level: 'debug', secrets: ['correct horse battery', 'f00dfeed0123'] })
    logger('keyfair:test')('asked with %s and token %s: %s', 'correct horse battery', 'f00dfeed0123', pem)
    const text = await readFile(logFilePath(dir), 'utf8')
    assert.match(text, /asked with \[redacted\] and token \[redacted\]: \[redacted private key\]/)
    assert.ok(!text.includes('correct horse') && !text.includes('f00dfeed') && !text.includes('MIIE'))
  })

  it('rotates at its size, keeping a bounded number of old files', async function () {
    const path = join(dir, 'logs', 'keyfair.log')
    const file = new RotatingFile(path, { maxBytes: 1000, keep: 2 })
    const line = 'x'.repeat(99) + '\n'
    for (let i = 0; i < 50; i++) file.write(line)
    file.close()
    assert.deepEqual((await readdir(join(dir, 'logs'))).sort(), ['keyfair.log', 'keyfair.log.1', 'keyfair.log.2'])
    for (const name of ['keyfair.log', 'keyfair.log.1', 'keyfair.log.2']) {
      assert.ok((await readFile(join(dir, 'logs', name))).byteLength <= 1000, name)
    }
    // a reopened file goes on from its size
    const again = new RotatingFile(path, { maxBytes: 1000, keep: 2 })
    again.write(line)
    again.close()
    assert.equal((await readFile(path)).byteLength % 100, 0)
  })

  it('an internal error of the control API names the log file, where its stack went', async function () {
    const repo = new Repo(join(dir, 'repo'))
    await repo.init()
    fileLog = installFileLog({ repoPath: repo.path, level: 'error' })
    const routes = { 'log.level': async () => { throw new TypeError('wires crossed in the test route') } } as unknown as ControlRoutes
    const server = new ControlServer({ repo, routes, port: 0 })
    await server.start()
    try {
      const res = await fetch(`${server.url}/api/v1/log.level`, { method: 'POST', headers: { authorization: `Bearer ${await repo.readToken()}` }, body: '{}' })
      assert.equal(res.status, 500)
      const { error } = await res.json() as { error: { code: string, message: string } }
      assert.deepEqual(error, { code: 'ERR_INTERNAL', message: `internal error (see the node log ${logFilePath(repo.path)})` })
    } finally {
      await server.stop()
    }
    assert.match(await readFile(logFilePath(repo.path), 'utf8'), /ERROR keyfair:control:error control request \/api\/v1\/log.level failed - TypeError: wires crossed/)
  })
})
