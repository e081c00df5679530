// The web UI's login, session and cross-site defences, over a real node process and raw HTTP
// (a browser's requests, including the ones a hostile page would make).
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Swarm } from '../../scripts/swarm.ts'
import { runCli } from '../helpers/cli.ts'
import { serveAsset } from '../../node/control/ui/assets.ts'
import { UiSessions } from '../../node/control/ui/sessions.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'

interface Answer { status: number, headers: IncomingHttpHeaders, body: string }

/** One request with exactly the headers given (Host, Origin and Cookie included) */
async function raw (url: string, method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, setHost: !('host' in headers) }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }) })
    })
    req.on('error', reject)
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')))
    req.end(body)
  })
}

describe('web UI sessions on the control server', function () {
  this.timeout(120_000)
  let swarm: Swarm
  let node: SwarmNode
  let api: string

  before(async function () {
    swarm = await Swarm.start({ nodes: [{ roles: ['buyer'] }] })
    node = swarm.nodes[0]!
    api = JSON.parse(await readFile(join(node.repo, 'api'), 'utf8')).url
  })

  after(async function () {
    await swarm?.stop()
  })

  async function login (): Promise<{ cookie: string, csrf: string }> {
    const printed = await runCli(['--repo', node.repo, 'ui', '--json'])
    assert.equal(printed.code, 0, printed.stderr)
    const { url } = JSON.parse(printed.stdout)
    assert.match(url, new RegExp(`^${api}/ui/login\\?code=[A-Za-z0-9_-]{43}$`))
    const page = await raw(url, 'GET', {})
    assert.equal(page.status, 200)
    const setCookie = page.headers['set-cookie']?.[0] ?? ''
    assert.match(setCookie, /HttpOnly/)
    assert.match(setCookie, /SameSite=Strict/)
    const cookie = setCookie.split(';')[0]!
    const session = await raw(`${api}/ui/session`, 'GET', { cookie })
    assert.equal(session.status, 200)
    return { cookie, csrf: JSON.parse(session.body).csrf }
  }

  const call = async (name: string, headers: Record<string, string>): Promise<Answer> =>
    raw(`${api}/api/v1/${name}`, 'POST', { 'content-type': 'application/json', ...headers }, '{}')

  it('a login address works once; the session calls the API with its proof from the node\'s own page', async function () {
    const printed = JSON.parse((await runCli(['--repo', node.repo, 'ui', '--json'])).stdout)
    assert.equal((await raw(printed.url, 'GET', {})).status, 200)
    const again = await raw(printed.url, 'GET', {})
    assert.equal(again.status, 401, 'a second use is refused')
    assert.equal(again.headers['set-cookie'], undefined)
    assert.equal((await raw(`${api}/ui/login?code=not-a-code`, 'GET', {})).status, 401)

    const { cookie, csrf } = await login()
    const ok = await call('status', { cookie, origin: api, 'x-keyfair-csrf': csrf, 'sec-fetch-site': 'same-origin' })
    assert.equal(ok.status, 200, ok.body)
    assert.equal(JSON.parse(ok.body).peerId, node.peerId)
  })

  it('refuses a cross-site request with the cookie but without the proof, from another origin, or cross-site', async function () {
    const { cookie, csrf } = await login()
    const refusals = [
      await call('status', { cookie, origin: api }),
      await call('status', { cookie, origin: api, 'x-keyfair-csrf': 'x'.repeat(csrf.length) }),
      await call('status', { cookie, origin: 'http://evil.example', 'x-keyfair-csrf': csrf }),
      await call('status', { cookie, 'x-keyfair-csrf': csrf }),
      await call('status', { cookie, origin: api, 'x-keyfair-csrf': csrf, 'sec-fetch-site': 'cross-site' }),
      await call('ui.login', { cookie, origin: api, 'x-keyfair-csrf': csrf })
    ]
    for (const r of refusals) {
      assert.equal(r.status, 403, r.body)
      assert.equal(JSON.parse(r.body).error.code, 'ERR_FORBIDDEN')
    }
    const stale = await call('status', { cookie: cookie.replace(/=.*/, '=unknown'), origin: api, 'x-keyfair-csrf': csrf })
    assert.equal(stale.status, 401)
    assert.equal((await raw(`${api}/ui/session`, 'GET', {})).status, 401)
  })

  it('refuses a request whose Host is not the node\'s, to the pages and to the API', async function () {
    const { cookie, csrf } = await login()
    const port = new URL(api).port
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`]) {
      const page = await raw(`${api}/ui/session`, 'GET', { host, cookie })
      assert.equal(page.status, 401, `${host}: ${page.body}`)
      const answer = await call('status', { host, cookie, origin: api, 'x-keyfair-csrf': csrf })
      assert.equal(answer.status, 401)
    }
  })

  it('media: an unknown work is refused with its reason and nothing left waiting; a bad type or proof too', async function () {
    const { cookie, csrf } = await login()
    const unknown = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const answer = await raw(`${api}/ui/media/${unknown}?type=audio/wav&csrf=${csrf}`, 'GET', { cookie })
    assert.equal(answer.status, 422, answer.body)
    assert.equal(JSON.parse(answer.body).error.code, 'ERR_UNKNOWN_CONTENT')
    assert.equal((await raw(`${api}/ui/media/${unknown}?type=text/html&csrf=${csrf}`, 'GET', { cookie })).status, 400)
    assert.equal((await raw(`${api}/ui/media/${unknown}?type=audio/wav`, 'GET', { cookie })).status, 403)
    assert.equal((await raw(`${api}/ui/media/%E0%A4%A?csrf=${csrf}`, 'GET', { cookie })).status, 400)
    assert.equal((await raw(`${api}/ui/media/${unknown}?csrf=${csrf}`, 'HEAD', { cookie })).status, 400)
    // the node still answers: no pipe left blocking it
    assert.equal((await call('status', { cookie, origin: api, 'x-keyfair-csrf': csrf })).status, 200)
  })
})

describe('web UI files and login codes', function () {
  let root: string

  before(async function () {
    root = await mkdtemp(join(tmpdir(), 'keyfair-ui-dist-'))
    await mkdir(join(root, 'assets'))
    await writeFile(join(root, 'index.html'), '<!doctype html><title>x</title>')
    await writeFile(join(root, 'assets', 'app.js'), 'export {}')
    await writeFile(join(root, '.secret.js'), 'no')
  })

  after(async function () {
    await rm(root, { recursive: true, force: true })
  })

  /** What serveAsset answers: status, headers and body, or the error's code */
  async function serve (path: string): Promise<{ headers: Record<string, unknown>, body: string } | { code: string }> {
    const chunks: Buffer[] = []
    let headers: Record<string, unknown> = {}
    const { Writable } = await import('node:stream')
    const res = Object.assign(new Writable({ write (c, _e, cb) { chunks.push(c); cb() } }), {
      writeHead (_status: number, h: Record<string, unknown>) { headers = h; return this }
    }) as unknown as ServerResponse
    try {
      await serveAsset(path, res, root + '/')
      return { headers, body: Buffer.concat(chunks).toString('utf8') }
    } catch (err: any) {
      return { code: err.code }
    }
  }

  it('serves the build with a strict content policy, and nothing outside it, hidden or of an unknown type', async function () {
    const index = await serve('')
    assert.ok('body' in index)
    assert.match(index.body, /<title>x<\/title>/)
    assert.match(String(index.headers['content-security-policy']), /script-src 'self'/)
    assert.equal(index.headers['x-frame-options'], 'DENY')
    const js = await serve('assets/app.js')
    assert.ok('headers' in js && String(js.headers['content-type']).startsWith('text/javascript'))
    for (const path of ['../index.html', 'assets/../../x.html', '.secret.js', 'assets/app.ts', 'missing.js', 'assets']) {
      assert.deepEqual(await serve(path), { code: 'ERR_NOT_FOUND' }, path)
    }
  })

  it('a login code is spent once and lapses after five minutes; an idle session lapses', function () {
    let now = 1_000_000
    const sessions = new UiSessions(() => now)
    const { code } = sessions.issueCode()
    const id = sessions.redeem(code)
    assert.ok(id != null)
    assert.equal(sessions.redeem(code), undefined)
    assert.ok(sessions.session(id) != null)
    const late = sessions.issueCode().code
    now += 5 * 60_000 + 1
    assert.equal(sessions.redeem(late), undefined)
    now += 12 * 60 * 60_000 + 1
    assert.equal(sessions.session(id), undefined)
  })
})
