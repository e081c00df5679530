// Headless Chromium for the web UI's tests, driven by playwright-core, with a fresh profile in
// a temporary directory. Without /usr/bin/chromium the browser suites are skipped with one
// line, except under CI (env CI set), where they fail.
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import type { BrowserContext } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const SKIP_LINE = 'skipped: the web UI browser tests need Chromium at /usr/bin/chromium (apt-get install chromium)'

let skipPrinted = false

/** For a `before` hook: returns when Chromium is there; else skips the suite (or fails under CI) */
export function requireChromium (context: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return
  if (process.env.CI != null && process.env.CI !== '') throw new Error(`Chromium not found at ${CHROMIUM}: CI must install chromium`)
  if (!skipPrinted) console.log(SKIP_LINE)
  skipPrinted = true
  context.skip()
}

export interface Browser {
  context: BrowserContext
  /** Closes the browser and removes its profile */
  close: () => Promise<void>
}

/** A headless Chromium on a new, empty profile, pages about 1000 px wide */
export async function launchBrowser (): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'keyfair-chromium-'))
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1000, height: 800 },
      timeout: 60_000
    })
    return {
      context,
      close: async () => {
        await context.close().catch(() => {})
        await rm(profile, { recursive: true, force: true })
      }
    }
  } catch (err) {
    await rm(profile, { recursive: true, force: true })
    throw err
  }
}
