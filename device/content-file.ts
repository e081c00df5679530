// Files of the content format: plaintext in, a ciphertext file (stored chunks back to
// back) and its manifest out, and back. Memory stays at about one chunk whatever the
// file size. Plaintext is written to `<out>.partial` and renamed only once every chunk
// authenticated, so a failed decryption never leaves a plausible-looking output.
import { createReadStream } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { decryptContent, encryptContent, storedChunkLength, TruncatedError, validateManifest } from './crypto/index.ts'
import type { ContentManifest, ContentSecrets, StoredChunk } from './crypto/index.ts'

export interface Progress {
  chunks: number
  chunkCount?: number
  bytes: number
}

export interface FileOptions {
  onProgress?: (progress: Progress) => void
  signal?: AbortSignal
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
  let bytes = 0
  try {
    for await (const chunk of encryption) {
      await out.write(chunk.data)
      bytes += chunk.data.length
      options.onProgress?.({ chunks: chunk.index + 1, bytes })
    }
    await out.sync()
  } finally {
    await out.close()
  }
  return encryption.manifest()
}

/**
 * Decrypts a ciphertext file to `output` under K; each chunk is checked against
 * the manifest and authenticated before its plaintext is written.
 */
export async function decryptFile (input: string, output: string, manifest: ContentManifest, key: Uint8Array, options: FileOptions = {}): Promise<number> {
  validateManifest(manifest)
  const partial = `${output}.partial`
  const source = createReadStream(input, { highWaterMark: Math.min(manifest.chunkSize + 16, 4 * 1024 * 1024), signal: options.signal })
  const out = await open(partial, 'w', 0o600)
  let bytes = 0
  let chunks = 0
  try {
    for await (const plaintext of decryptContent(storedChunksOf(source, manifest), manifest, key)) {
      await out.write(plaintext)
      bytes += plaintext.length
      plaintext.fill(0)
      options.onProgress?.({ chunks: ++chunks, chunkCount: manifest.chunkCount, bytes })
    }
    await out.sync()
  } catch (err) {
    await out.close()
    await rm(partial, { force: true })
    throw err
  } finally {
    source.destroy()
  }
  await out.close()
  await rename(partial, output)
  return bytes
}
