// Child process of the streaming-memory test: writes `size` bytes of plaintext,
// encrypts and decrypts them through the file API, and prints peak RSS and hashes.
// Usage: node test/helpers/stream-file.ts <dir> <size>
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { decryptFile, encryptFile } from '../../device/content-file.ts'
import { generateContentSecrets } from '../../device/crypto/index.ts'

const [dir, sizeArg] = process.argv.slice(2)
const size = Number(sizeArg)
if (dir == null || !Number.isSafeInteger(size)) throw new Error('usage: stream-file.ts <dir> <size>')

async function hashFile (file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(piece as Buffer)
  return hash.digest('hex')
}

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
let t = performance.now()
const manifest = await encryptFile(plainFile, join(dir, 'cipher.kf'), secrets)
const encryptMs = performance.now() - t
t = performance.now()
const bytes = await decryptFile(join(dir, 'cipher.kf'), join(dir, 'out.bin'), manifest, secrets.key)
const decryptMs = performance.now() - t
process.stdout.write(JSON.stringify({
  size,
  bytes,
  chunkCount: manifest.chunkCount,
  plainHash: plainHash.digest('hex'),
  outHash: await hashFile(join(dir, 'out.bin')),
  maxRssBytes: process.resourceUsage().maxRSS * 1024,
  encryptMBps: size / 1e6 / (encryptMs / 1000),
  decryptMBps: size / 1e6 / (decryptMs / 1000)
}) + '\n')
