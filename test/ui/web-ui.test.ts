// The web UI in a real browser over a real local marketplace: node processes (an agency, two
// escrows, a seller, a buyer) each serving its own pages. Chromium logs in with the one-time
// address `keyfair ui` prints, publishes from the seller's page, searches and buys from the
// store with live progress, plays the bought WAV in an <audio> element, sees the hold at an
// escrow and its release after the confirmation, and revokes the device in the agency's page,
// after which the device's next purchase is refused with the reason shown.
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Swarm } from '../../scripts/swarm.ts'
import { buildUi } from '../../scripts/build-ui.ts'
import { launchBrowser, requireChromium } from '../helpers/browser.ts'
import { swarmCli } from '../helpers/swarm-cli.ts'
import { toneWav } from '../helpers/wav.ts'
import type { Browser } from '../helpers/browser.ts'
import type { SwarmNode } from '../../scripts/swarm.ts'
import type { Page } from 'playwright-core'

const PASSPHRASE = 'web ui passphrase'
const TONE_SECONDS = 2
/** Set to `docs` to refresh the README's screenshots in docs/images/ */
const SCREENSHOTS_TO_DOCS = process.env.KEYFAIR_SCREENSHOTS === 'docs'
const DOCS_IMAGES = fileURLToPath(new URL('../../docs/images/', import.meta.url))

const cli = swarmCli(PASSPHRASE)
const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** The width of a PNG image, from its header */
function pngWidth (png: Uint8Array): number {
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG file')
  return Buffer.from(png).readUInt32BE(16)
}

describe('web UI in a browser', function () {
  this.timeout(600_000)
  let swarm: Swarm | undefined
  let browser: Browser | undefined
  let dir: string
  let shots: string
  let agency: SwarmNode, e1: SwarmNode, e2: SwarmNode, seller: SwarmNode, buyer: SwarmNode
  const pages = new Map<string, Page>()
  /** what the pages reported on their console: a content-policy violation would be here */
  const consoleErrors: string[] = []
  let deviceId: string
  let purchase: string

  before(async function () {
    requireChromium(this)
    dir = await mkdtemp(join(tmpdir(), 'keyfair-web-ui-'))
    shots = SCREENSHOTS_TO_DOCS ? DOCS_IMAGES : join(dir, 'images')
    await mkdir(shots, { recursive: true })
    await buildUi()
    browser = await launchBrowser()
    swarm = await Swarm.start({
      topology: 'star',
      env: { KEYFAIR_PASSPHRASE: PASSPHRASE },
      nodes: [
        { roles: ['agency'], prepare: [['agency', 'init', '--bits', '2048']] },
        ...[1, 2].map(() => ({ roles: ['escrow'], prepare: [['escrow', 'init', '--bits', '2048', '--unblind-workers', '0']] })),
        { roles: ['seller'] },
        { roles: ['buyer'] }
      ]
    })
    ;[agency, e1, e2, seller, buyer] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode, SwarmNode, SwarmNode]
    const agencyAddr = agency.addresses[0]!
    for (const e of [e1, e2]) {
      const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'escrow')
      await cli(e, 'escrow', 'enroll', '--agency', agencyAddr, '--code', code)
      await cli(e, 'escrow', 'deposit', buyer.peerId, '10.00 EUR')
    }
    await cli(seller, 'trust', '--agency', agencyAddr)
    await cli(buyer, 'device', 'init', '--bits', '2048')
    const { code } = await cli(agency, 'agency', 'enroll-code', '--for', 'device')
    deviceId = (await cli(buyer, 'device', 'enroll', '--agency', agencyAddr, '--code', code)).deviceId
    // a second work, bought only after the device is revoked
    await writeFile(join(dir, 'second.wav'), toneWav(1))
    await cli(seller, 'publish', join(dir, 'second.wav'), '--title', 'Second Tone', '--tags', 'second', '--price', '0.20', '--escrows', '2-of-2', '--escrow', e1.addresses[0]!, '--escrow', e2.addresses[0]!)
  })

  after(async function () {
    await browser?.close()
    await swarm?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  /** A page of the browser logged in to `node`'s web UI with a fresh one-time address */
  async function open (node: SwarmNode, name: string): Promise<{ page: Page, url: string }> {
    const { url } = await cli(node, 'ui')
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/ui\/login\?code=/)
    const page = await browser!.context.newPage()
    page.on('console', m => { if (m.type() === 'error') consoleErrors.push(`${name}: ${m.text()}`) })
    page.on('pageerror', err => { consoleErrors.push(`${name}: ${err.message}`) })
    await page.goto(url)
    await page.waitForURL(/\/ui\/(#.*)?$/, { timeout: 30_000 })
    await page.getByRole('navigation', { name: 'Pages' }).waitFor({ timeout: 30_000 })
    pages.set(name, page)
    return { page, url }
  }

  async function shot (page: Page, name: string): Promise<void> {
    const file = join(shots, `web-ui-${name}.png`)
    await page.screenshot({ path: file, fullPage: true })
    const width = pngWidth(new Uint8Array(await readFile(file)))
    assert.ok(width >= 900 && width <= 1100, `screenshot ${name} is ${width} px wide`)
  }

  it('logs in with the one-time address, once; shows only the pages of the node\'s roles', async function () {
    // without a session the page says how to get one
    const stranger = await browser!.context.newPage()
    await stranger.goto(`${agency.api}/ui/`)
    const refusal = stranger.getByRole('alert')
    await refusal.waitFor({ timeout: 30_000 })
    assert.match(await refusal.textContent() ?? '', /Not signed in:.*ERR_UNAUTHORIZED/)
    assert.match(await stranger.textContent('main') ?? '', /Run keyfair ui on this machine/)
    await stranger.close()
    const { page, url } = await open(buyer, 'buyer')
    assert.deepEqual(await page.getByRole('navigation', { name: 'Pages' }).getByRole('link').allTextContents(), ['Store', 'Library'])
    // the address works once: a second use (here by another page) is refused
    const again = await browser!.context.newPage()
    const refused = await again.goto(url)
    assert.equal(refused?.status(), 401)
    assert.match(await again.textContent('body') ?? '', /used already/)
    await again.close()
    const { page: sellerPage } = await open(seller, 'seller')
    assert.deepEqual(await sellerPage.getByRole('navigation', { name: 'Pages' }).getByRole('link').allTextContents(), ['Seller'])
  })

  it('publishes a file from the seller\'s page, 2-of-2 escrows, with progress', async function () {
    const page = pages.get('seller')!
    await writeFile(join(dir, 'tone.wav'), toneWav(TONE_SECONDS))
    await page.getByLabel('File (a path on this machine)').fill(join(dir, 'tone.wav'))
    await page.getByLabel('Title', { exact: true }).fill('Test Tone')
    await page.getByLabel('Tags (comma-separated)').fill('tone, webui')
    await page.getByLabel('Price to each escrow').fill('0.20')
    await page.getByLabel('Escrows (t-of-n)').fill('2-of-2')
    await page.getByLabel(/^Escrow addresses/).fill(`${e1.addresses[0]!}\n${e2.addresses[0]!}`)
    await page.getByRole('button', { name: 'Publish' }).click()
    await page.getByRole('status').filter({ hasText: "Published 'Test Tone'" }).waitFor({ timeout: 120_000 })
    const terms = await page.locator('dl.done').textContent()
    assert.match(terms ?? '', /€0\.20 to each of 2 of 2 escrows/)
    assert.match(terms ?? '', /device-bound/)
    // the contents table lists both works this seller holds
    await page.getByRole('button', { name: 'Refresh' }).click()
    await page.locator('table.contents tbody tr').nth(1).waitFor({ timeout: 30_000 })
  })

  it('finds the work in the store and buys it, with live progress before the result', async function () {
    const page = pages.get('buyer')!
    await page.goto(page.url().replace(/#.*$/, '') + '#/store')
    const offer = page.locator('article.offer', { hasText: 'Test Tone' })
    // the announcement may take a moment to reach the buyer's DHT view
    for (let i = 0; i < 20 && !(await offer.isVisible()); i++) {
      await page.getByLabel('Keywords').fill('webui')
      await page.getByRole('button', { name: 'Search' }).click()
      await page.locator('[role=status]:has-text("offer(s) found"), [role=alert]').first().waitFor({ timeout: 60_000 })
      if (!(await offer.isVisible())) await sleep(1000)
    }
    const terms = await offer.locator('dl.terms').textContent() ?? ''
    assert.match(terms, /€0\.20 to each of 2 escrows, €0\.40 in total/)
    assert.match(terms, /2-of-2/)
    assert.match(terms, /device-bound/)
    // record, in the page, each change of the progress display and when the result appeared
    await page.evaluate(`(() => {
      const log = window.__buyLog = []
      new MutationObserver(() => {
        const progress = document.querySelector('article.offer .progress')
        log.push({ events: Number(progress?.getAttribute('data-events') ?? 0), done: document.querySelector('article.offer .done') != null,
          escrows: [...document.querySelectorAll('article.offer table.escrows tbody tr')].map(r => r.textContent) })
      }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true })
    })()`)
    await offer.getByRole('button', { name: 'Buy' }).click()
    await offer.getByRole('button', { name: 'Pay €0.40' }).click()
    await offer.locator('.done').waitFor({ timeout: 180_000 })
    const log = await page.evaluate('window.__buyLog') as Array<{ events: number, done: boolean, escrows: string[] }>
    const firstDone = log.findIndex(l => l.done)
    const before = log.slice(0, firstDone).filter(l => l.events > 0)
    assert.ok(before.length > 0, 'progress shown before the result')
    assert.ok(before.some(l => l.escrows.length > 0), 'escrow states shown before the result')
    assert.match(await offer.locator('.done').textContent() ?? '', /Paid €0\.40 in total/)
    const states = await offer.locator('table.escrows tbody tr').allTextContents()
    assert.equal(states.length, 2)
    for (const s of states) assert.match(s, /answered/)
    assert.match(await offer.locator('.progress [role=status]').textContent() ?? '', /^Bought\. .*KiB of .*KiB/)
    await shot(page, 'store')
    const { purchases } = await cli(buyer, 'purchases')
    purchase = purchases[0].purchase
  })

  it('plays the bought WAV in an <audio> element of the library', async function () {
    const page = pages.get('buyer')!
    await page.goto(page.url().replace(/#.*$/, '') + '#/library')
    const licence = page.locator('article.licence', { hasText: 'Test Tone' })
    await licence.getByRole('button', { name: 'Play here' }).click()
    const duration = await page.evaluate(`new Promise((resolve, reject) => {
      const audio = document.querySelector('article.licence audio')
      if (audio == null) return reject(new Error('no audio element'))
      if (audio.readyState >= 1) return resolve(audio.duration)
      audio.addEventListener('loadedmetadata', () => resolve(audio.duration))
      audio.addEventListener('error', () => reject(new Error('media error ' + (audio.error && audio.error.code) + ' ' + (audio.error && audio.error.message))))
      setTimeout(() => reject(new Error('no metadata within 60 s')), 60000)
    })`) as number
    assert.ok(Math.abs(duration - TONE_SECONDS) < 0.05, `duration ${duration} s`)
    await page.locator(`tr[data-purchase="${purchase}"]`).waitFor({ timeout: 30_000 })
    await shot(page, 'library')
  })

  it('shows the hold at an escrow, and its release once the buyer confirms', async function () {
    const { page } = await open(e1, 'escrow')
    const hold = page.locator(`table.holds tr[data-purchase="${purchase}"] .hold-state`)
    await hold.waitFor({ timeout: 30_000 })
    assert.equal(await hold.textContent(), 'open')
    assert.match(await page.locator('table.accounts').textContent() ?? '', /€9\.80/)
    await shot(page, 'escrow')

    const library = pages.get('buyer')!
    const row = library.locator(`tr[data-purchase="${purchase}"]`)
    await row.getByRole('button', { name: 'Confirm' }).click()
    await row.getByRole('button', { name: 'Yes, confirm' }).click()
    await row.getByRole('status').filter({ hasText: 'Confirmed:' }).waitFor({ timeout: 60_000 })
    await page.getByRole('button', { name: 'Refresh' }).first().click()
    await page.locator(`table.holds tr[data-purchase="${purchase}"] .hold-state`, { hasText: 'released' }).waitFor({ timeout: 30_000 })
    // the audit balances after the release
    await page.getByRole('button', { name: 'Run audit' }).click()
    await page.getByRole('status').filter({ hasText: 'The ledger balances.' }).waitFor({ timeout: 30_000 })
  })

  it('lists the sale in the seller\'s page, at each escrow, released once confirmed', async function () {
    const page = pages.get('seller')!
    const sales = page.locator('section.card').filter({ has: page.getByRole('heading', { name: 'Sales', exact: true }) })
    for (const escrow of [e1, e2]) {
      await sales.getByLabel('Escrow (peer id or address)').fill(escrow.addresses[0]!)
      await sales.getByRole('button', { name: 'Show sales' }).click()
      const state = sales.locator(`table.sales tr[data-purchase="${purchase}"] .sale-state`)
      await state.waitFor({ timeout: 30_000 })
      assert.equal(await state.textContent(), 'released')
      assert.match(await sales.getByRole('status').textContent() ?? '', /Balance at this escrow: €0\.20; 1 sale, 0 held\./)
    }
    // an escrow that is not there: its reason, not an empty list
    await sales.getByLabel('Escrow (peer id or address)').fill('not-an-address')
    await sales.getByRole('button', { name: 'Show sales' }).click()
    await sales.getByRole('alert').waitFor({ timeout: 30_000 })
    assert.match(await sales.getByRole('alert').textContent() ?? '', /ERR_[A-Z_]+/)
    assert.equal(await sales.locator('table.sales').count(), 0)
  })

  it('revokes the buyer\'s device from the agency\'s page; the device\'s next purchase is refused with the reason', async function () {
    const { page } = await open(agency, 'agency')
    const form = page.locator('section.card').filter({ has: page.getByRole('heading', { name: 'Revoke', exact: true }) })
    await form.getByLabel('Serial, device id or peer id').fill(deviceId)
    await form.getByLabel('Reason (optional)').fill('keyCompromise')
    await form.getByRole('button', { name: 'Revoke', exact: true }).click()
    await form.getByRole('button', { name: 'Yes, revoke' }).click()
    await form.getByRole('status').filter({ hasText: /Revoked 2 certificate\(s\); revocation list number \d+/ }).waitFor({ timeout: 60_000 })
    const crl = await agency.client.call('agency.crl')
    assert.equal(crl.revoked, 2)
    // the table reloads after the revocation: both of the device's certificates read revoked
    const revokedRows = page.locator(`table.certs tr[data-subject="${deviceId}"].state-revoked`)
    await revokedRows.nth(1).waitFor({ timeout: 30_000 })
    assert.equal(await revokedRows.count(), 2)
    assert.match(await revokedRows.first().locator('.cert-state').textContent() ?? '', /^revoked .*\(keyCompromise\)$/)
    // revocation reaches the escrows over gossip within seconds
    const deadline = Date.now() + 30_000
    for (;;) {
      const held = await Promise.all([e1, e2].map(async e => Number((await e.client.call('escrow.info')).crl)))
      if (held.every(n => n >= crl.number)) break
      assert.ok(Date.now() < deadline, `escrows hold CRL ${held.join(', ')}, not ${crl.number}`)
      await sleep(200)
    }

    const store = pages.get('buyer')!
    await store.goto(store.url().replace(/#.*$/, '') + '#/store')
    await store.getByLabel('Keywords').fill('second')
    await store.getByRole('button', { name: 'Search' }).click()
    const offer = store.locator('article.offer', { hasText: 'Second Tone' })
    await offer.waitFor({ timeout: 60_000 })
    await offer.getByRole('button', { name: 'Buy' }).click()
    await offer.getByRole('button', { name: 'Pay €0.40' }).click()
    const alert = offer.getByRole('alert')
    await alert.waitFor({ timeout: 120_000 })
    const text = await alert.textContent() ?? ''
    assert.match(text, /Purchase failed/)
    assert.match(text, /ERR_CERT_REVOKED/, text)
    assert.equal(await offer.locator('.done').count(), 0, 'nothing bought')

    // the library says why, once the buyer's node has heard the list too
    await store.goto(store.url().replace(/#.*$/, '') + '#/library')
    const banner = store.getByRole('alert').filter({ hasText: 'This device is revoked by the agency (keyCompromise)' })
    for (let i = 0; i < 30 && !(await banner.isVisible()); i++) {
      await sleep(1000)
      await store.reload()
      await store.getByRole('heading', { name: 'Licences' }).waitFor({ timeout: 30_000 })
    }
    await banner.waitFor({ timeout: 30_000 })
  })

  it('runs with no content-policy violation or script error in any page', function () {
    assert.deepEqual(consoleErrors.filter(e => /Content Security Policy|Refused to|Uncaught/i.test(e)), [])
  })
})
