// Content format v1 (docs/protocol.md, Content format): AES-256-GCM chunks, STREAM-style.
// Chunk i: nonce = prefix(8) ‖ u32(i), AAD = salt(16) ‖ u32(i) ‖ u8(last),
// stored as ciphertext ‖ tag(16). An empty work is one empty final chunk.
// The manifest lists SHA-256 of every stored chunk so any peer can check
// ciphertext without K.
import { randomBytes } from 'node:crypto'
import { GCM_TAG_LENGTH, gcmOpen, gcmSeal } from './aead.ts'
import { bytesEqual, concat, sha256, u32, u8 } from './bytes.ts'
import {
  ChunkAuthError, ChunkHashError, ChunkOrderError, ExtraChunkError, InvalidArgumentError,
  InvalidStateError, ManifestError, TruncatedError
} from './errors.ts'

export const CONTENT_KEY_LENGTH = 32
export const SALT_LENGTH = 16
export const NONCE_PREFIX_LENGTH = 8
export const TAG_LENGTH = GCM_TAG_LENGTH
export const CHUNK_HASH_LENGTH = 32
export const DEFAULT_CHUNK_SIZE = 1024 * 1024
/** Upper bound accepted from a manifest, so a hostile one cannot make us buffer gigabytes */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024
/** Chunk indices are u32 */
export const MAX_CHUNK_COUNT = 2 ** 32

export interface ContentManifest {
  v: 1
  /** plaintext bytes per chunk (the last chunk may be shorter) */
  chunkSize: number
  /** plaintext bytes of the whole work */
  size: number
  chunkCount: number
  salt: Uint8Array
  noncePrefix: Uint8Array
  /** SHA-256 of each stored chunk (ciphertext ‖ tag), in order */
  chunkHashes: Uint8Array[]
}

export interface ChunkParams {
  key: Uint8Array
  salt: Uint8Array
  noncePrefix: Uint8Array
  index: number
  last: boolean
}

export interface SealedChunk {
  index: number
  last: boolean
  /** ciphertext ‖ tag */
  data: Uint8Array
}

export interface StoredChunk {
  index: number
  data: Uint8Array
}

export interface EncryptContentOptions {
  key: Uint8Array
  salt: Uint8Array
  noncePrefix: Uint8Array
  chunkSize?: number
}

/** Sealed chunks, in order; iterate once. manifest() is available once the last chunk was yielded */
export interface ContentEncryption extends AsyncIterable<SealedChunk> {
  manifest: () => ContentManifest
}

export interface ContentSecrets {
  key: Uint8Array
  salt: Uint8Array
  noncePrefix: Uint8Array
}

/** Fresh K, salt and nonce prefix for one work. K must never encrypt a second work */
export function generateContentSecrets (): ContentSecrets {
  return {
    key: new Uint8Array(randomBytes(CONTENT_KEY_LENGTH)),
    salt: new Uint8Array(randomBytes(SALT_LENGTH)),
    noncePrefix: new Uint8Array(randomBytes(NONCE_PREFIX_LENGTH))
  }
}

function checkBytes (value: unknown, length: number, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new InvalidArgumentError(`${what} must be ${length} bytes`)
  }
}

function checkIndex (index: unknown): asserts index is number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= MAX_CHUNK_COUNT) {
    throw new InvalidArgumentError('chunk index must be a u32')
  }
}

function checkChunkSize (chunkSize: unknown): asserts chunkSize is number {
  if (typeof chunkSize !== 'number' || !Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidArgumentError(`chunk size must be an integer in [1, ${MAX_CHUNK_SIZE}]`)
  }
}

function checkChunkParams (p: ChunkParams): void {
  checkBytes(p.key, CONTENT_KEY_LENGTH, 'content key')
  checkBytes(p.salt, SALT_LENGTH, 'content salt')
  checkBytes(p.noncePrefix, NONCE_PREFIX_LENGTH, 'nonce prefix')
  checkIndex(p.index)
  if (typeof p.last !== 'boolean') throw new InvalidArgumentError('last must be a boolean')
}

export function chunkNonce (noncePrefix: Uint8Array, index: number): Uint8Array {
  checkBytes(noncePrefix, NONCE_PREFIX_LENGTH, 'nonce prefix')
  return concat(noncePrefix, u32(index))
}

export function chunkAad (salt: Uint8Array, index: number, last: boolean): Uint8Array {
  checkBytes(salt, SALT_LENGTH, 'content salt')
  return concat(salt, u32(index), u8(last ? 1 : 0))
}

/** Seals one chunk: ciphertext ‖ tag */
export function sealChunk (params: ChunkParams & { plaintext: Uint8Array }): Uint8Array {
  checkChunkParams(params)
  if (!(params.plaintext instanceof Uint8Array)) throw new InvalidArgumentError('plaintext must be bytes')
  return gcmSeal(params.key, chunkNonce(params.noncePrefix, params.index),
    chunkAad(params.salt, params.index, params.last), params.plaintext)
}

/** Opens one chunk; throws ChunkAuthError unless it was sealed for exactly this key, work, index and last flag */
export function openChunk (params: ChunkParams & { data: Uint8Array }): Uint8Array {
  checkChunkParams(params)
  if (!(params.data instanceof Uint8Array)) throw new InvalidArgumentError('chunk data must be bytes')
  const pt = gcmOpen(params.key, chunkNonce(params.noncePrefix, params.index),
    chunkAad(params.salt, params.index, params.last), params.data)
  if (pt === undefined) throw new ChunkAuthError(`chunk ${params.index} failed authentication`)
  return pt
}

export function chunkCountFor (size: number, chunkSize: number): number {
  checkChunkSize(chunkSize)
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError('size must be a non-negative integer')
  return size === 0 ? 1 : Math.ceil(size / chunkSize)
}

/** Stored length (ciphertext ‖ tag) of chunk `index` of a valid manifest */
export function storedChunkLength (manifest: ContentManifest, index: number): number {
  if (index < manifest.chunkCount - 1) return manifest.chunkSize + TAG_LENGTH
  return manifest.size - (manifest.chunkCount - 1) * manifest.chunkSize + TAG_LENGTH
}

// everything but the per-chunk hashes: O(1)
function validateManifestHeader (manifest: ContentManifest): void {
  const m = manifest as unknown as Record<string, unknown>
  if (m == null || typeof m !== 'object') throw new ManifestError('manifest must be an object')
  if (m.v !== 1) throw new ManifestError('unsupported manifest version')
  if (typeof m.chunkSize !== 'number' || !Number.isInteger(m.chunkSize) || m.chunkSize < 1 || m.chunkSize > MAX_CHUNK_SIZE) {
    throw new ManifestError('invalid chunk size')
  }
  if (typeof m.size !== 'number' || !Number.isSafeInteger(m.size) || m.size < 0) throw new ManifestError('invalid size')
  const count = chunkCountFor(m.size, m.chunkSize)
  if (count > MAX_CHUNK_COUNT) throw new ManifestError('too many chunks')
  if (m.chunkCount !== count) throw new ManifestError('chunk count does not match size')
  if (!(m.salt instanceof Uint8Array) || m.salt.length !== SALT_LENGTH) throw new ManifestError('invalid salt')
  if (!(m.noncePrefix instanceof Uint8Array) || m.noncePrefix.length !== NONCE_PREFIX_LENGTH) {
    throw new ManifestError('invalid nonce prefix')
  }
  if (!Array.isArray(m.chunkHashes) || m.chunkHashes.length !== count) throw new ManifestError('chunk hash count does not match')
}

/** Structural checks on a manifest received from the network (once per manifest: O(chunkCount)) */
export function validateManifest (manifest: ContentManifest): void {
  validateManifestHeader(manifest)
  for (const h of manifest.chunkHashes as unknown[]) {
    if (!(h instanceof Uint8Array) || h.length !== CHUNK_HASH_LENGTH) throw new ManifestError('invalid chunk hash')
  }
}

/** The manifest's hash of chunk `index`, or null when there is no such chunk or `length` is not its length */
function expectedChunkHash (manifest: ContentManifest, index: number, length: number): Uint8Array | null {
  if (!Number.isInteger(index) || index < 0 || index >= manifest.chunkCount) return null
  const expected: unknown = manifest.chunkHashes[index]
  if (!(expected instanceof Uint8Array) || expected.length !== CHUNK_HASH_LENGTH) throw new ManifestError('invalid chunk hash')
  return length === storedChunkLength(manifest, index) ? expected : null
}

// manifest header already validated
function chunkMatches (manifest: ContentManifest, index: number, data: Uint8Array | readonly Uint8Array[]): boolean {
  const pieces = data instanceof Uint8Array ? [data] : data
  if (!Array.isArray(pieces) || !pieces.every(p => p instanceof Uint8Array)) return false
  const expected = expectedChunkHash(manifest, index, pieces.reduce((n, p) => n + p.length, 0))
  return expected != null && bytesEqual(sha256(...pieces), expected)
}

/**
 * Whether `data` is stored chunk `index` of the manifest (length and SHA-256); needs no
 * key. `data` may be the pieces the chunk arrived in, hashed in order without joining them.
 */
export function verifyChunk (manifest: ContentManifest, index: number, data: Uint8Array | readonly Uint8Array[]): boolean {
  validateManifestHeader(manifest)
  return chunkMatches(manifest, index, data)
}

function openChecked (manifest: ContentManifest, key: Uint8Array, index: number, data: Uint8Array): Uint8Array {
  if (!chunkMatches(manifest, index, data)) throw new ChunkHashError(`chunk ${index} does not match the manifest`)
  return openChunk({
    key,
    salt: manifest.salt,
    noncePrefix: manifest.noncePrefix,
    index,
    last: index === manifest.chunkCount - 1,
    data
  })
}

function openAuthenticated (manifest: ContentManifest, key: Uint8Array, index: number, data: Uint8Array): Uint8Array {
  if (data.length !== storedChunkLength(manifest, index)) throw new ChunkHashError(`chunk ${index} does not match the manifest`)
  try {
    return openChunk({ key, salt: manifest.salt, noncePrefix: manifest.noncePrefix, index, last: index === manifest.chunkCount - 1, data })
  } catch (err) {
    if (err instanceof ChunkAuthError && !chunkMatches(manifest, index, data)) throw new ChunkHashError(`chunk ${index} does not match the manifest`)
    throw err
  }
}

/**
 * Checks one stored chunk against the manifest, then opens it under K. For a dispute:
 * ChunkHashError blames whoever served the chunk, ChunkAuthError the key or the seller.
 */
export function openVerifiedChunk (manifest: ContentManifest, key: Uint8Array, index: number, data: Uint8Array): Uint8Array {
  validateManifestHeader(manifest)
  checkBytes(key, CONTENT_KEY_LENGTH, 'content key')
  return openChecked(manifest, key, index, data)
}

/**
 * Encrypts a stream of any-sized pieces into sealed chunks, holding at most one
 * chunk of plaintext: a full chunk is sealed only once a further byte shows it is
 * not the last.
 */
export function encryptContent (
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: EncryptContentOptions
): ContentEncryption {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE
  checkChunkSize(chunkSize)
  checkBytes(opts.key, CONTENT_KEY_LENGTH, 'content key')
  checkBytes(opts.salt, SALT_LENGTH, 'content salt')
  checkBytes(opts.noncePrefix, NONCE_PREFIX_LENGTH, 'nonce prefix')
  // copies, so a caller mutating its buffers mid-stream cannot mix two works
  const salt = new Uint8Array(opts.salt)
  const noncePrefix = new Uint8Array(opts.noncePrefix)
  const keyCopy = new Uint8Array(opts.key)
  let started = false
  let result: ContentManifest | undefined

  async function * run (): AsyncGenerator<SealedChunk, void, undefined> {
    const key = keyCopy
    const pending = new Uint8Array(chunkSize)
    const chunkHashes: Uint8Array[] = []
    let fill = 0
    let index = 0
    let size = 0
    const seal = (last: boolean): SealedChunk => {
      const data = sealChunk({ key, salt, noncePrefix, index, last, plaintext: pending.subarray(0, fill) })
      chunkHashes.push(sha256(data))
      return { index, last, data }
    }
    try {
      for await (const piece of source) {
        if (!(piece instanceof Uint8Array)) throw new InvalidArgumentError('content source must yield bytes')
        let offset = 0
        while (offset < piece.length) {
          if (fill === chunkSize) {
            // more bytes follow, so the buffered chunk is not the last
            const chunk = seal(false)
            index++
            fill = 0
            yield chunk
          }
          const n = Math.min(chunkSize - fill, piece.length - offset)
          pending.set(piece.subarray(offset, offset + n), fill)
          fill += n
          offset += n
          size += n
        }
      }
      const final = seal(true)
      // set before yielding: a consumer may stop right after the last chunk
      result = { v: 1, chunkSize, size, chunkCount: index + 1, salt, noncePrefix, chunkHashes }
      yield final
    } finally {
      pending.fill(0)
      key.fill(0)
    }
  }

  return {
    [Symbol.asyncIterator] () {
      if (started) throw new InvalidStateError('content encryption can be iterated only once')
      started = true
      return run()
    },
    manifest () {
      if (result === undefined) throw new InvalidStateError('manifest is known only after the last chunk')
      return result
    }
  }
}

/**
 * Decrypts stored chunks in order, yielding each chunk's plaintext only after it
 * authenticated under K (GCM binds it to its index, its place as last or not, and the
 * work's salt). Only a chunk that fails is hashed against the manifest, to name whose
 * fault it is; one that authenticates was sealed by the holder of K, so hashing it too
 * would add a second full pass for nothing. Throws on a chunk out of order, a chunk
 * after the last, and, at the end, on a missing final chunk.
 */
export async function * decryptContent (
  chunks: AsyncIterable<StoredChunk> | Iterable<StoredChunk>,
  manifest: ContentManifest,
  key: Uint8Array
): AsyncGenerator<Uint8Array, void, undefined> {
  validateManifest(manifest)
  checkBytes(key, CONTENT_KEY_LENGTH, 'content key')
  let expected = 0
  for await (const chunk of chunks) {
    if (expected >= manifest.chunkCount) throw new ExtraChunkError(`chunk after the final chunk ${manifest.chunkCount - 1}`)
    if (chunk == null || chunk.index !== expected) throw new ChunkOrderError(`expected chunk ${expected}`)
    const plaintext = openAuthenticated(manifest, key, expected, chunk.data)
    expected++
    yield plaintext
  }
  if (expected < manifest.chunkCount) {
    throw new TruncatedError(`content ended after ${expected} of ${manifest.chunkCount} chunks`)
  }
}
