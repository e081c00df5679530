// A buy dials a peer again while it cannot be reached yet (as just after a restart), and
// never asks again a peer that answered with a refusal that stands.
import assert from 'node:assert/strict'
import { connect as netConnect, createServer } from 'node:net'
import { logger } from '@libp2p/logger'
import { REDIAL_WINDOW_MS, withRedial } from '../../node/buyer/redial.ts'
import { RemoteError } from '../../protocols/errors.ts'
import type { AddressInfo } from 'node:net'

const log = logger('keyfair:test:redial')

/** Connects to 127.0.0.1:port and resolves when connected: fails with ECONNREFUSED while nothing listens */
async function connect (port: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port, signal })
    socket.once('connect', () => { socket.destroy(); resolve() })
    socket.once('error', reject)
  })
}

describe('dialling a peer again within a buy', function () {
  it('reaches a peer that starts listening a moment after the first try', async function () {
    // a port that was free a moment ago: nothing listens on it until the "restart" below
    const probe = createServer()
    await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as AddressInfo).port
    await new Promise<void>(resolve => probe.close(() => { resolve() }))
    let tries = 0
    const server = createServer(socket => socket.destroy())
    const restarted = setTimeout(() => { server.listen(port, '127.0.0.1') }, 700)
    try {
      const started = Date.now()
      await withRedial(async signal => { tries++; await connect(port, signal) }, { signal: AbortSignal.timeout(10_000), log, what: 'the test peer' })
      assert.ok(tries >= 2, `reached at try ${tries}`)
      assert.ok(Date.now() - started < REDIAL_WINDOW_MS, 'within the window')
    } finally {
      clearTimeout(restarted)
      await new Promise<void>(resolve => { if (server.listening) server.close(() => { resolve() }); else resolve() })
    }
  })

  it('asks again after a "not yet" refusal, never after one that stands', async function () {
    let tries = 0
    const answer = await withRedial(async () => {
      if (++tries < 3) throw new RemoteError('the agency did not answer', 'ERR_AGENCY_UNREACHABLE')
      return 'share'
    }, { signal: AbortSignal.timeout(10_000), log, what: 'escrow 1' })
    assert.equal(answer, 'share')
    assert.equal(tries, 3)

    tries = 0
    await assert.rejects(withRedial(async () => {
      tries++
      throw new RemoteError('revoked', 'ERR_CERT_REVOKED')
    }, { signal: AbortSignal.timeout(10_000), log, what: 'escrow 2' }), { code: 'ERR_CERT_REVOKED' })
    assert.equal(tries, 1)
  })

  it('stops at the end of its window, and at once when the buy stops', async function () {
    this.timeout(REDIAL_WINDOW_MS + 10_000)
    const unreachable = async (): Promise<never> => { throw Object.assign(new Error('no addresses'), { name: 'NoValidAddressesError' }) }
    let started = Date.now()
    await assert.rejects(withRedial(unreachable, { signal: AbortSignal.timeout(60_000), log, what: 'a gone peer' }), { name: 'NoValidAddressesError' })
    const spent = Date.now() - started
    assert.ok(spent <= REDIAL_WINDOW_MS + 500, `gave up after ${spent} ms`)

    const stop = new AbortController()
    setTimeout(() => { stop.abort() }, 300)
    started = Date.now()
    await assert.rejects(withRedial(unreachable, { signal: stop.signal, log, what: 'a gone peer' }))
    assert.ok(Date.now() - started < 2_000, 'stopped with the buy')
  })
})
