// Child process of the streaming-memory test, one phase per process so each peak is
// that phase's alone:
// - `encrypt`: writes `size` bytes of plaintext, encrypts them through the file API and
//   leaves the ciphertext, the manifest and the key in `dir`;
// - `decrypt`: decrypts them back through the file API.
// Prints peak RSS, the RSS just before the work, speeds and hashes.
// Usage: node test/helpers/stream-file.ts <dir> <size> encrypt|decrypt
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { createReadStream, readFileSync } from 'node:fs'
import { open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decryptFile, encryptFile } from '../../device/content-file.ts'
import { generateContentSecrets } from '../../device/crypto/index.ts'
import { decodeObject, encodeObject } from '../../device/objects/codec.ts'
import { parseManifest } from '../../device/objects/market.ts'

const [dir, sizeArg, phase] = process.argv.slice(2)
const size = Number(sizeArg)
if (dir == null || !Number.isSafeInteger(size) || (phase !== 'encrypt' && phase !== 'decrypt')) {
  throw new Error('usage: stream-file.ts <dir> <size> encrypt|decrypt')
}

async function hashFile (file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(piece as Buffer)
  return hash.digest('hex')
}

const rssKb = (field: 'VmRSS' | 'VmHWM'): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1])

if (phase === 'encrypt') {
  // plaintext: an AES-CTR keystream, fast and incompressible
  const plainFile = join(dir, 'plain.bin')
  const keystream = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16))
  const zeros = new Uint8Array(1024 * 1024)
  const plainHash = createHash('sha256')
  const out = await open(plainFile, 'w')
  for (let written = 0; written < size;) {
    const n = Math.min(zeros.length, size - written)
    const piece = keystream.update(zeros.subarray(0, n))
    plainHash.update(piece)
    await out.write(piece)
    written += n
  }
  await out.close()
  const secrets = generateContentSecrets()
  const before = rssKb('VmRSS')
  const t = performance.now()
  const manifest = await encryptFile(plainFile, join(dir, 'cipher.kf'), secrets)
  const ms = performance.now() - t
  await writeFile(join(dir, 'manifest.cbor'), encodeObject(manifest))
  await writeFile(join(dir, 'key.bin'), secrets.key)
  process.stdout.write(JSON.stringify({
    size,
    chunkCount: manifest.chunkCount,
    plainHash: plainHash.digest('hex'),
    beforeRssBytes: before * 1024,
    peakRssBytes: rssKb('VmHWM') * 1024,
    MBps: size / 1e6 / (ms / 1000)
  }) + '\n')
} else {
  const manifest = parseManifest(decodeObject(await readFile(join(dir, 'manifest.cbor'))))
  const key = new Uint8Array(await readFile(join(dir, 'key.bin')))
  const before = rssKb('VmRSS')
  const t = performance.now()
  const bytes = await decryptFile(join(dir, 'cipher.kf'), join(dir, 'out.bin'), manifest, key)
  const ms = performance.now() - t
  const peak = rssKb('VmHWM')
  process.stdout.write(JSON.stringify({
    bytes,
    outHash: await hashFile(join(dir, 'out.bin')),
    beforeRssBytes: before * 1024,
    peakRssBytes: peak * 1024,
    MBps: size / 1e6 / (ms / 1000)
  }) + '\n')
}
