// The web UI's files, served from the package's own build (`ui/dist`, made by `npm install` or
// `npm run build:ui`): nothing comes from another site, and the page may load nothing from one.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pipeline } from 'node:stream/promises'
import { NotFoundError } from '../../errors.ts'
import type { ServerResponse } from 'node:http'

export const UI_DIST = fileURLToPath(new URL('../../../ui/dist/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.map': 'application/json'
}

/** What every UI answer carries: the page runs only its own code and is framed by nobody */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache'
}

/** Serves `/ui/<path>` from the build; `/ui/` is its index page */
export async function serveAsset (path: string, res: ServerResponse, root = UI_DIST): Promise<void> {
  const relative = path === '' ? 'index.html' : path
  const type = TYPES[extname(relative)]
  // only known file types, no hidden files, nothing outside the build
  const file = normalize(join(root, relative))
  if (type == null || !file.startsWith(root) || relative.split('/').some(part => part.startsWith('.')) || file.includes(`${sep}.`)) {
    throw new NotFoundError(`no such page /ui/${path}`)
  }
  const info = await stat(file).catch(() => undefined)
  if (info == null || !info.isFile()) {
    throw new NotFoundError(relative === 'index.html' ? 'the web UI is not built: run npm run build:ui in the keyfair checkout' : `no such page /ui/${path}`)
  }
  res.writeHead(200, { ...PAGE_HEADERS, 'content-type': type, 'content-length': info.size })
  await pipeline(createReadStream(file), res)
}
