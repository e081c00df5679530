// Files of the content format: plaintext in, a ciphertext file (stored chunks back to
// back) and its manifest out, and back. Memory stays at about one chunk whatever the
// file size. Plaintext is written to `<out>.partial` and renamed only once every chunk
// authenticated, so a failed decryption never leaves a plausible-looking output.
import { createReadStream } from 'node:fs'
import { lstat, open, rename, rm } from 'node:fs/promises'
import { decryptContent, encryptContent, storedChunkLength, TruncatedError, validateManifest } from './crypto/index.ts'
import type { ContentManifest, ContentSecrets, StoredChunk } from './crypto/index.ts'
import { StreamSweeper } from './sweeper.ts'
import type { ChunkFeed } from './chunk-feed.ts'
import type { FileHandle } from 'node:fs/promises'

/**
 * The device collects its young generation every 4 MiB streamed, not every 16 as a node
 * does. V8 counts the buffers allocated outside its heap since its last full collection
 * against the old generation's limit, whose slack is about 8 MB here; freed chunk buffers
 * stop counting only once a collection has seen them dead. The device allocates little
 * else, so its own young collections are rare: 16 MiB of spent plaintext between two
 * sweeps took it past that slack, and a device playing behind a download ran a full
 * collection every ~16 MiB (50–88 over five 256 MiB plays in P1) at about twice the CPU
 * of the same decryption alone. Every 4 MiB: 3–5 full collections over five plays and
 * 350–460 ms of CPU per play, against 680–1010 (13 P1 rows against 15).
 */
export const DEVICE_SWEEP_BYTES = 4 * 1024 * 1024

export interface Progress {
  chunks: number
  chunkCount?: number
  bytes: number
}

export interface FileOptions {
  onProgress?: (progress: Progress) => void
  signal?: AbortSignal
}

export interface DecryptOptions extends FileOptions {
  /** the input is still being written, in order: each chunk is read once the feed has it */
  feed?: ChunkFeed
}

/** Splits a byte stream into the stored chunks the manifest describes */
export async function * storedChunksOf (source: AsyncIterable<Uint8Array>, manifest: ContentManifest): AsyncGenerator<StoredChunk, void, undefined> {
  let index = 0
  let want = storedChunkLength(manifest, 0)
  let pending = new Uint8Array(want)
  let fill = 0
  for await (const piece of source) {
    let offset = 0
    while (offset < piece.length) {
      if (index >= manifest.chunkCount) {
        // bytes past the final chunk: let the decryptor name the error
        yield { index, data: piece.subarray(offset) }
        return
      }
      const n = Math.min(want - fill, piece.length - offset)
      pending.set(piece.subarray(offset, offset + n), fill)
      fill += n
      offset += n
      if (fill === want) {
        yield { index, data: pending }
        index++
        fill = 0
        if (index < manifest.chunkCount) {
          const next = storedChunkLength(manifest, index)
          // decryption has finished with the previous buffer once the generator resumes
          if (next !== want) pending = new Uint8Array(next)
          want = next
        }
      }
    }
  }
  if (fill > 0) throw new TruncatedError(`content ended inside chunk ${index}`)
}

/** Encrypts `input` into `output` (stored chunks); returns the manifest */
export async function encryptFile (input: string, output: string, secrets: ContentSecrets & { chunkSize?: number }, options: FileOptions = {}): Promise<ContentManifest> {
  const source = createReadStream(input, { highWaterMark: 1024 * 1024, signal: options.signal })
  const encryption = encryptContent(source, secrets)
  const out = await open(output, 'w', 0o644)
  const sweeper = new StreamSweeper(DEVICE_SWEEP_BYTES)
  let bytes = 0
  try {
    for await (const chunk of encryption) {
      await out.write(chunk.data)
      bytes += chunk.data.length
      sweeper.streamed(chunk.data.length)
      options.onProgress?.({ chunks: chunk.index + 1, bytes })
    }
    await out.sync()
  } finally {
    await out.close()
  }
  return encryption.manifest()
}

/**
 * The stored chunks of a ciphertext file, read in order into one reused buffer (the
 * consumer is done with a chunk when it asks for the next): no allocation per chunk.
 * Bytes past the final chunk are handed on for the decryptor to name the error.
 */
async function * fileChunksOf (input: FileHandle, manifest: ContentManifest, signal?: AbortSignal, feed?: ChunkFeed): AsyncGenerator<StoredChunk, void, undefined> {
  const buffer = new Uint8Array(storedChunkLength(manifest, 0))
  let position = 0
  for (let index = 0; index < manifest.chunkCount; index++) {
    signal?.throwIfAborted()
    await feed?.reach(index, signal)
    const data = buffer.subarray(0, storedChunkLength(manifest, index))
    const { bytesRead } = await input.read(data, 0, data.length, position)
    if (bytesRead !== data.length) throw new TruncatedError(`content ended inside chunk ${index}`)
    position += data.length
    yield { index, data }
  }
  const extra = new Uint8Array(1)
  if ((await input.read(extra, 0, 1, position)).bytesRead > 0) yield { index: manifest.chunkCount, data: extra }
}

/**
 * Decrypts a ciphertext file to `output` under K; each chunk is checked against
 * the manifest and authenticated before its plaintext is written. An `output` that is a
 * named pipe (a player reading as it plays) is written straight into, with nothing on disk.
 */
export async function decryptFile (input: string, output: string, manifest: ContentManifest, key: Uint8Array, options: DecryptOptions = {}): Promise<number> {
  validateManifest(manifest)
  const piped = await isPipe(output)
  const target = piped ? output : `${output}.partial`
  const source = await open(input, 'r')
  let out: FileHandle | undefined
  try {
    out = await open(target, 'w', 0o600)
    const bytes = await decryptInto(out, source, manifest, key, options)
    if (!piped) await out.sync()
    await out.close()
    if (!piped) await rename(target, output)
    return bytes
  } catch (err) {
    await out?.close().catch(() => {})
    if (!piped) await rm(target, { force: true })
    throw err
  } finally {
    await source.close()
  }
}

async function decryptInto (out: FileHandle, source: FileHandle, manifest: ContentManifest, key: Uint8Array, options: DecryptOptions): Promise<number> {
  let bytes = 0
  let chunks = 0
  const sweeper = new StreamSweeper(DEVICE_SWEEP_BYTES)
  for await (const plaintext of decryptContent(fileChunksOf(source, manifest, options.signal, options.feed), manifest, key)) {
    await out.write(plaintext)
    bytes += plaintext.length
    plaintext.fill(0)
    sweeper.streamed(plaintext.length)
    options.onProgress?.({ chunks: ++chunks, chunkCount: manifest.chunkCount, bytes })
  }
  return bytes
}

async function isPipe (path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFIFO()
  } catch {
    return false
  }
}
