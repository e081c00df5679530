/**
 * `npm run build:ui`: bundles the web UI (ui/src, TypeScript + Preact) into ui/dist/ —
 * index.html, app.js and app.css — which a node serves at /ui/. No inline script or style
 * anywhere: the node's Content-Security-Policy allows only files from itself.
 */
import { copyFile, mkdir, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const ROOT = fileURLToPath(new URL('../ui/', import.meta.url))
export const UI_DIST = `${ROOT}dist/`

export async function buildUi (options: { minify?: boolean } = {}): Promise<void> {
  await rm(UI_DIST, { recursive: true, force: true })
  await mkdir(UI_DIST, { recursive: true })
  await build({
    entryPoints: { app: `${ROOT}src/main.tsx` },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: options.minify ?? true,
    sourcemap: true,
    outdir: UI_DIST,
    logLevel: 'warning'
  })
  await build({ entryPoints: { app: `${ROOT}src/app.css` }, bundle: true, minify: options.minify ?? true, outdir: UI_DIST, logLevel: 'warning' })
  await copyFile(`${ROOT}src/index.html`, `${UI_DIST}index.html`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now()
  buildUi().then(() => {
    process.stdout.write(`web UI built into ui/dist/ in ${Date.now() - started} ms\n`)
  }, (err: unknown) => {
    process.stderr.write(`build-ui: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
