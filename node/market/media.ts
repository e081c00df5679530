// Portable media (docs/cli.md, export and import): a content's ciphertext, manifest and signed offers as
// one directory another node can import without downloading: everything in it is
// checked on import (the manifest's CID, every chunk, every offer's signature).
import { copyFile, mkdir, readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { parseSignedOffer } from '../../device/objects/market.ts'
import { verifyPeerSigned } from '../../device/objects/signed.ts'
import { writeFileAtomic } from '../../device/store/files.ts'
import { ObjectError, SignatureError } from '../../device/objects/errors.ts'
import { UnknownContentError } from '../content/store.ts'
import { MediaExistsError, NotMediaError } from './errors.ts'
import type { Market } from './market.ts'

const MANIFEST = 'manifest.cbor'
const DATA = 'data.kf'
const OFFERS = 'offers'
const README = 'README.txt'

export interface Exported { content: string, path: string, offers: number, bytes: number }
export interface Imported { content: string, offers: string[], seeding: boolean }

/** Writes `<path>/` with the manifest, the ciphertext and the offers of a complete content */
export async function exportContent (market: Market, content: string, path: string): Promise<Exported> {
  if (!(await market.content.isComplete(content))) throw new UnknownContentError(content)
  const exists = await stat(path).then(() => true, (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
    return false
  })
  if (exists) throw new MediaExistsError(path)
  await mkdir(join(path, OFFERS), { recursive: true })
  await writeFileAtomic(join(path, MANIFEST), (await market.content.manifestBytes(content))!, 0o644)
  await copyFile(market.content.dataFile(content), join(path, DATA))
  const offers = await market.content.offers(content)
  for (const [i, offer] of offers.entries()) await writeFileAtomic(join(path, OFFERS, `${i}.cbor`), encodeObject(offer), 0o644)
  await writeFileAtomic(join(path, README), `keyfair content ${content}\nimport it with: keyfair import ${path}\n`, 0o644)
  return { content, path, offers: offers.length, bytes: (await stat(join(path, DATA))).size }
}

/** Imports a directory written by exportContent, checking everything in it */
export async function importContent (market: Market, path: string, options: { seed?: boolean } = {}): Promise<Imported> {
  let manifest: Uint8Array
  try {
    manifest = await readFile(join(path, MANIFEST))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotMediaError(path, MANIFEST, { cause: err })
    throw err
  }
  const content = await market.content.importCiphertext(manifest, join(path, DATA))
  const offers: string[] = []
  for (const name of (await readdir(join(path, OFFERS)).catch(() => [])).sort()) {
    const offer = parseSignedOffer(decodeObject(await readFile(join(path, OFFERS, name))))
    if ((await verifyPeerSigned(offer, 'offer')) !== offer.body.terms.seller) throw new SignatureError(`offer ${name} is not signed by its seller`)
    if (offer.body.terms.content.toString() !== content) throw new ObjectError(`offer ${name} is for another content`)
    await market.content.addOffer(offer)
    offers.push(await market.rememberOffer(offer))
  }
  if (options.seed === true) await market.content.setServing(content, true)
  return { content, offers, seeding: options.seed === true }
}
