// Ciphertext a node holds, by content id, in `<repo>/content/<cid>/`: the manifest
// (`manifest.cbor`, whose CID is the content id), the stored chunks back to back
// (`data.kf`), the signed offers known for it (`offers/`), `complete` once every chunk
// verified, and `paid` while a paid buy has not finished. A download writes each
// verified chunk at its offset; after an interruption, resuming re-hashes what is on
// disk (all but the chunks this same process verified before writing them), so no
// bookkeeping from another run is trusted.
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, readdir, rm, stat } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { TAG_LENGTH, storedChunkLength, validateManifest, verifyChunk } from '../../device/crypto/index.ts'
import { storedChunksOf } from '../../device/content-file.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { contentIdOf, parseManifest, parseSignedOffer } from '../../device/objects/market.ts'
import { signedId } from '../../device/objects/signed.ts'
import { fileExists, writeFileAtomic } from '../../device/store/files.ts'
import { StreamSweeper, TRANSFER_SWEEP_BYTES } from '../../device/sweeper.ts'
import { delayChunkRead } from './disk-delay.ts'
import { BadChunkError, BadRangeError, IncompleteContentError, ShortWriteError, WrongManifestError } from './errors.ts'
import { UnknownContentError } from '../../protocols/market/content.ts'
import type { ContentManifest } from '../../device/crypto/index.ts'
import type { Offer } from '../../device/objects/market.ts'
import type { Signed } from '../../device/objects/signed.ts'

export { UnknownContentError }
export { BadChunkError }

/** Byte offset of stored chunk `index`: every chunk but the last is chunkSize + tag */
export function chunkOffset (manifest: ContentManifest, index: number): number {
  return index * (manifest.chunkSize + TAG_LENGTH)
}

export function ciphertextLength (manifest: ContentManifest): number {
  return chunkOffset(manifest, manifest.chunkCount - 1) + storedChunkLength(manifest, manifest.chunkCount - 1)
}

export interface ContentSummary {
  content: string
  size: number
  chunkCount: number
  complete: boolean
  offers: number
}

export class ContentStore {
  readonly dir: string
  private readonly manifests = new Map<string, ContentManifest>()
  /** chunks this process verified and wrote since the content's last `missing` scan */
  private readonly written = new Map<string, Set<number>>()
  /** one open data file per content being downloaded, instead of an open per chunk */
  private readonly writers = new Map<string, Promise<FileHandle>>()
  /**
   * Chunks going out are short-lived: collected as they stream (a download sweeps the chunks
   * coming in itself). Every 16 MiB, a provider serving 256 MiB ran 32–42 full collections and
   * 4.4 s of CPU; every 2 MiB, 4–30 and 2.1 s, and its buyer downloaded twice as fast
   */
  private readonly sweeper = new StreamSweeper(TRANSFER_SWEEP_BYTES)

  constructor (dir: string) {
    this.dir = dir
  }

  private pathOf (cid: string, file: string): string {
    return join(this.dir, CID.parse(cid).toString(), file)
  }

  dataFile (cid: string): string {
    return this.pathOf(cid, 'data.kf')
  }

  /** Stores a manifest after checking it names `cid` (or itself, when no cid is given) */
  async putManifest (bytes: Uint8Array, expected?: string): Promise<{ cid: string, manifest: ContentManifest }> {
    const manifest = parseManifest(decodeObject(bytes))
    validateManifest(manifest)
    const cid = contentIdOf(manifest).toString()
    if (expected != null && cid !== expected) throw new WrongManifestError(cid, expected)
    await mkdir(join(this.dir, cid, 'offers'), { recursive: true })
    await writeFileAtomic(this.pathOf(cid, 'manifest.cbor'), encodeObject(manifest), 0o644)
    this.manifests.set(cid, manifest)
    return { cid, manifest }
  }

  async manifest (cid: string): Promise<ContentManifest | undefined> {
    const cached = this.manifests.get(cid)
    if (cached != null) return cached
    try {
      const manifest = parseManifest(decodeObject(await readFile(this.pathOf(cid, 'manifest.cbor'))))
      this.manifests.set(cid, manifest)
      return manifest
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
  }

  async manifestBytes (cid: string): Promise<Uint8Array | undefined> {
    const manifest = await this.manifest(cid)
    return manifest == null ? undefined : encodeObject(manifest)
  }

  async isComplete (cid: string): Promise<boolean> {
    return fileExists(this.pathOf(cid, 'complete'))
  }

  /**
   * Writes one chunk at its place after checking it against the manifest. `data` may be the
   * pieces the chunk arrived in: they are hashed in order and written with one gathering
   * call, never joined (a join, or a hash on libuv's pool, would copy the chunk on this
   * thread, which costs it more than hashing it)
   */
  async writeChunk (cid: string, index: number, data: Uint8Array | Uint8Array[]): Promise<void> {
    const manifest = await this.requireManifest(cid)
    const pieces = data instanceof Uint8Array ? [data] : data
    const length = pieces.reduce((n, p) => n + p.length, 0)
    if (!Number.isInteger(index) || index < 0 || index >= manifest.chunkCount || length !== storedChunkLength(manifest, index)) {
      throw BadChunkError.chunk(cid, index)
    }
    if (!verifyChunk(manifest, index, pieces)) throw BadChunkError.chunk(cid, index)
    const handle = await this.writer(cid)
    const { bytesWritten } = await handle.writev(pieces, chunkOffset(manifest, index))
    if (bytesWritten !== length) throw new ShortWriteError(cid, index)
    let written = this.written.get(cid)
    if (written == null) this.written.set(cid, written = new Set())
    written.add(index)
  }

  private async writer (cid: string): Promise<FileHandle> {
    let handle = this.writers.get(cid)
    if (handle == null) {
      const file = this.dataFile(cid)
      handle = fileExists(file).then(async exists => open(file, exists ? 'r+' : 'w+', 0o644))
      this.writers.set(cid, handle)
      handle.catch(() => { this.writers.delete(cid) })
    }
    return handle
  }

  /** Flushes and closes the data file a download wrote through */
  private async closeWriter (cid: string, sync: boolean): Promise<void> {
    const handle = this.writers.get(cid)
    if (handle == null) return
    this.writers.delete(cid)
    const file = await handle
    try {
      if (sync) await file.sync()
    } finally {
      await file.close()
    }
  }

  /** Ends a download that stopped before completion: the chunks written so far stay */
  async releaseWriter (cid: string): Promise<void> {
    await this.closeWriter(cid, true)
  }

  async readChunk (cid: string, index: number): Promise<Uint8Array> {
    for await (const chunk of this.readChunks(cid, index, index + 1)) return chunk
    throw new BadRangeError(`no chunk ${index} in ${cid}`)
  }

  /** Chunks from..to−1 of a complete content, in order, through one open file */
  async * readChunks (cid: string, from: number, to: number): AsyncGenerator<Uint8Array, void, undefined> {
    const manifest = await this.requireManifest(cid)
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > manifest.chunkCount || from > to) throw new BadRangeError(`no chunks ${from}..${to - 1} in ${cid}`)
    const handle = await open(this.dataFile(cid), 'r')
    try {
      for (let index = from; index < to; index++) {
        const length = storedChunkLength(manifest, index)
        // a buffer per chunk: the stream may still hold the last one while this one is read
        const data = new Uint8Array(length)
        await delayChunkRead()
        const { bytesRead } = await handle.read(data, 0, length, chunkOffset(manifest, index))
        if (bytesRead !== length) throw new UnknownContentError(cid)
        yield data
        this.sweeper.streamed(length)
      }
    } finally {
      await handle.close()
    }
  }

  /** Indices of chunks not yet on disk (or on disk but wrong): re-hashes what is there */
  async missing (cid: string): Promise<number[]> {
    const manifest = await this.requireManifest(cid)
    if (await this.isComplete(cid)) return []
    const missing: number[] = []
    let handle
    try {
      handle = await open(this.dataFile(cid), 'r')
    } catch (err: any) {
      if (err.code === 'ENOENT') return Array.from({ length: manifest.chunkCount }, (_, i) => i)
      throw err
    }
    // chunks this process verified before writing need no second hash
    const written = this.written.get(cid) ?? new Set<number>()
    try {
      const buffer = new Uint8Array(manifest.chunkSize + TAG_LENGTH)
      for (let i = 0; i < manifest.chunkCount; i++) {
        if (written.has(i)) continue
        const length = storedChunkLength(manifest, i)
        const { bytesRead } = await handle.read(buffer, 0, length, chunkOffset(manifest, i))
        if (bytesRead !== length || !verifyChunk(manifest, i, buffer.subarray(0, length))) missing.push(i)
      }
    } finally {
      await handle.close()
    }
    return missing
  }

  /** Marks a content complete once every chunk verifies (fsyncs the data first) */
  async markComplete (cid: string): Promise<void> {
    await this.closeWriter(cid, false)
    const left = await this.missing(cid)
    if (left.length > 0) throw new IncompleteContentError(cid, left.length)
    const handle = await open(this.dataFile(cid), 'r+')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
    await writeFileAtomic(this.pathOf(cid, 'complete'), '', 0o644)
    this.written.delete(cid)
  }

  /** Takes a whole ciphertext file (publishing, or portable media) after verifying every chunk */
  async importCiphertext (manifestBytes: Uint8Array, file: string): Promise<string> {
    const { cid, manifest } = await this.putManifest(manifestBytes)
    const expected = ciphertextLength(manifest)
    if ((await stat(file)).size !== expected) throw new BadChunkError(`the ciphertext is not ${expected} bytes long`)
    const out = await open(this.dataFile(cid), 'w', 0o644)
    try {
      for await (const chunk of storedChunksOf(createReadStream(file, { highWaterMark: 1024 * 1024 }), manifest)) {
        if (!verifyChunk(manifest, chunk.index, chunk.data)) throw BadChunkError.chunk(cid, chunk.index)
        await out.write(chunk.data, 0, chunk.data.length, chunkOffset(manifest, chunk.index))
      }
      await out.sync()
    } finally {
      await out.close()
    }
    await writeFileAtomic(this.pathOf(cid, 'complete'), '', 0o644)
    return cid
  }

  /**
   * The purchase already paid for this content while its buy had not finished (the
   * download or the play still under way): buying again finishes it without paying again
   */
  async paidPurchase (cid: string): Promise<string | undefined> {
    try {
      const id = (await readFile(this.pathOf(cid, 'paid'), 'utf8')).trim()
      return /^[0-9a-f]{1,64}$/.test(id) ? id : undefined
    } catch (err: any) {
      if (err.code === 'ENOENT') return undefined
      throw err
    }
  }

  async setPaidPurchase (cid: string, purchase: string | undefined): Promise<void> {
    if (purchase != null) await writeFileAtomic(this.pathOf(cid, 'paid'), purchase, 0o644)
    else await rm(this.pathOf(cid, 'paid'), { force: true })
  }

  /** Whether this node serves the content (it published it, or seeds it) */
  async isServing (cid: string): Promise<boolean> {
    return (await this.isComplete(cid)) && fileExists(this.pathOf(cid, 'serve'))
  }

  async setServing (cid: string, serving: boolean): Promise<void> {
    if (serving) await writeFileAtomic(this.pathOf(cid, 'serve'), '', 0o644)
    else await rm(this.pathOf(cid, 'serve'), { force: true })
  }

  async addOffer (offer: Signed<Offer>): Promise<string> {
    const cid = offer.body.terms.content.toString()
    await this.requireManifest(cid)
    const id = signedId(offer).toString()
    await writeFileAtomic(this.pathOf(cid, join('offers', id)), encodeObject(offer), 0o644)
    return id
  }

  /** Signed offers known for a content (unverified here: buyers verify what they use) */
  async offers (cid: string): Promise<Array<Signed<Offer>>> {
    let names: string[]
    try {
      names = await readdir(this.pathOf(cid, 'offers'))
    } catch (err: any) {
      if (err.code === 'ENOENT') return []
      throw err
    }
    const offers: Array<Signed<Offer>> = []
    for (const name of names.sort()) {
      try {
        offers.push(parseSignedOffer(decodeObject(await readFile(this.pathOf(cid, join('offers', name))))))
      } catch {
        // a damaged file is skipped, never served
      }
    }
    return offers
  }

  async list (): Promise<ContentSummary[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err: any) {
      if (err.code === 'ENOENT') return []
      throw err
    }
    const out: ContentSummary[] = []
    for (const name of names) {
      const manifest = await this.manifest(name).catch(() => undefined)
      if (manifest == null) continue
      out.push({ content: name, size: manifest.size, chunkCount: manifest.chunkCount, complete: await this.isComplete(name), offers: (await this.offers(name)).length })
    }
    return out
  }

  async remove (cid: string): Promise<void> {
    await this.closeWriter(cid, false).catch(() => {})
    this.manifests.delete(cid)
    this.written.delete(cid)
    await rm(join(this.dir, CID.parse(cid).toString()), { recursive: true, force: true })
  }

  async requireManifest (cid: string): Promise<ContentManifest> {
    const manifest = await this.manifest(cid)
    if (manifest == null) throw new UnknownContentError(cid)
    return manifest
  }
}

