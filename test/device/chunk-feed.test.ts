// A play that follows a download still under way: the decryptor reads each chunk only
// once the feed says it is on disk, and a stopped, stalled or lying feed fails the play
// with nothing left at the output.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChunkFeed } from '../../device/chunk-feed.ts'
import { decryptFile, encryptFile } from '../../device/content-file.ts'
import { generateContentSecrets, storedChunkLength } from '../../device/crypto/index.ts'
import type { ContentManifest, ContentSecrets } from '../../device/crypto/index.ts'

const CHUNK = 16 * 1024

describe('a play following its download (ChunkFeed)', function () {
  let dir: string
  let plaintext: Uint8Array
  let ciphertext: Uint8Array
  let manifest: ContentManifest
  let secrets: ContentSecrets

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-feed-'))
    plaintext = randomBytes(CHUNK * 6 + 99)
    await writeFile(join(dir, 'plain'), plaintext)
    secrets = generateContentSecrets()
    manifest = await encryptFile(join(dir, 'plain'), join(dir, 'cipher'), { ...secrets, chunkSize: CHUNK })
    ciphertext = await readFile(join(dir, 'cipher'))
  })

  after(async function () {
    await rm(dir, { recursive: true, force: true })
  })

  const offsetOf = (i: number): number => i * storedChunkLength(manifest, 0)

  const gone = async (file: string): Promise<boolean> => stat(file).then(() => false, () => true)

  it('decrypts chunks as they are written, in any order, and waits for each gap to fill', async function () {
    const input = join(dir, 'growing')
    const output = join(dir, 'out-follow')
    const file = await open(input, 'w')
    const feed = new ChunkFeed(0)
    const progress: number[] = []
    const playing = decryptFile(input, output, manifest, secrets.key, { feed, onProgress: p => progress.push(p.chunks) })
    // chunks arrive out of order, as from several providers: the feed counts only the gap-free prefix
    const order = [1, 0, 3, 2, 5, 4, 6]
    const on = new Set<number>()
    let prefix = 0
    for (const i of order) {
      const at = offsetOf(i)
      await file.write(ciphertext.subarray(at, at + storedChunkLength(manifest, i)), 0, storedChunkLength(manifest, i), at)
      on.add(i)
      while (on.has(prefix)) prefix++
      feed.advance(prefix)
      await new Promise(resolve => setImmediate(resolve))
      assert.ok((progress.at(-1) ?? 0) <= prefix, 'never read past the written prefix')
    }
    await file.close()
    assert.equal(await playing, plaintext.length)
    assert.deepEqual(await readFile(output), Buffer.from(plaintext))
    assert.deepEqual(progress, [1, 2, 3, 4, 5, 6, 7])
  })

  it('a stopped download fails the play and leaves no output', async function () {
    const input = join(dir, 'half')
    await writeFile(input, ciphertext.subarray(0, offsetOf(3)))
    const output = join(dir, 'out-stopped')
    const feed = new ChunkFeed(3)
    const playing = decryptFile(input, output, manifest, secrets.key, { feed })
    setTimeout(() => { feed.stop() }, 20)
    await assert.rejects(playing, { code: 'ERR_FEED_STOPPED' })
    assert.ok(await gone(output))
    assert.ok(await gone(`${output}.partial`))
  })

  it('a download that stalls fails the play after the feed timeout', async function () {
    const input = join(dir, 'stalled')
    await writeFile(input, ciphertext.subarray(0, offsetOf(1)))
    const output = join(dir, 'out-stalled')
    const started = performance.now()
    await assert.rejects(decryptFile(input, output, manifest, secrets.key, { feed: new ChunkFeed(1, 50) }), { code: 'ERR_FEED_TIMEOUT' })
    assert.ok(performance.now() - started >= 45)
    assert.ok(await gone(output))
  })

  it('a feed that claims chunks not on disk, or damaged ones, fails the play with no output', async function () {
    const short = join(dir, 'short')
    await writeFile(short, ciphertext.subarray(0, offsetOf(4)))
    const damaged = join(dir, 'damaged')
    const bytes = Uint8Array.from(ciphertext.subarray(0, offsetOf(4)))
    bytes[offsetOf(2) + 5]! ^= 1
    await writeFile(damaged, bytes)
    // the feed lies about 7 chunks where 4 are written; the node wrote a chunk that is not the manifest's
    for (const [input, available, codes] of [[short, manifest.chunkCount, ['ERR_TRUNCATED']], [damaged, 3, ['ERR_CHUNK_HASH', 'ERR_CHUNK_AUTH']]] as const) {
      const output = join(dir, `out-${available}`)
      const feed = new ChunkFeed(available)
      await assert.rejects(decryptFile(input, output, manifest, secrets.key, { feed }), (err: any) => {
        assert.ok((codes as readonly string[]).includes(err.code), `${String(err.code)}: ${String(err.message)}`)
        return true
      })
      assert.ok(await gone(output))
      assert.ok(await gone(`${output}.partial`))
    }
  })

  it('counts only forward, and a waiting play ends when its signal aborts', async function () {
    const feed = new ChunkFeed(2)
    feed.advance(1)
    await feed.reach(1)
    const controller = new AbortController()
    const waiting = feed.reach(2, controller.signal)
    controller.abort(new Error('gone'))
    await assert.rejects(waiting, /gone/)
    feed.advance(3)
    await feed.reach(2)
    feed.stop()
    await feed.reach(2)
    await assert.rejects(feed.reach(3), { code: 'ERR_FEED_STOPPED' })
  })

  it('writes straight into a named pipe a player reads, leaving no file beside it', async function () {
    const pipe = join(dir, 'player')
    await promisify(execFile)('mkfifo', ['-m', '600', pipe])
    const chunks: Buffer[] = []
    const reading = (async () => { for await (const chunk of createReadStream(pipe)) chunks.push(chunk as Buffer) })()
    const bytes = await decryptFile(join(dir, 'cipher'), pipe, manifest, secrets.key)
    await reading
    assert.equal(bytes, plaintext.length)
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(plaintext))
    assert.ok(await gone(`${pipe}.partial`), 'no partial file: the plaintext went only through the pipe')
    assert.ok((await stat(pipe)).isFIFO(), 'the pipe is still a pipe, not replaced by a file')
  })
})
