// keyfair's noise crypto (keys imported once) against libp2p-noise's default: the same
// ciphertexts, each opens the other's, and a forged message is refused
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { noise } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import fc from 'fast-check'
import { Uint8ArrayList } from 'uint8arraylist'
import { keyedNoiseCrypto } from '../../node/noise-crypto.ts'
import { drained } from '../../protocols/toolkit/index.ts'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Libp2p, Stream } from '@libp2p/interface'

/** a plain copy (a Buffer's slice() is a view, not a copy) */
const bytesOf = (x: Uint8Array | { subarray: () => Uint8Array }): Uint8Array => new Uint8Array(x instanceof Uint8Array ? x : x.subarray())
/** the message as one array or as the pieces a stream delivered it in */
const asPieces = (data: Uint8Array, cuts: number[]): any => {
  const list = new Uint8ArrayList()
  let at = 0
  for (const cut of [...cuts.map(c => c % (data.length + 1))].sort((a, b) => a - b)) {
    list.append(data.subarray(at, cut))
    at = cut
  }
  list.append(data.subarray(at))
  return list
}

describe('noise crypto with keys imported once', () => {
  it('seals exactly as the default and each opens the other\'s messages, small and large, whole or in pieces', () => {
    const keyed = keyedNoiseCrypto()
    const key = new Uint8Array(randomBytes(32))
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 70_000 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 4 }), fc.boolean(),
      (plaintext, nonce, ad, cuts, whole) => {
        const input = whole ? plaintext : asPieces(plaintext, cuts)
        const sealed = bytesOf(keyed.chaCha20Poly1305Encrypt(input, nonce, ad, key))
        assert.deepEqual(sealed, bytesOf(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key)))
        const sealedInput = whole ? sealed.slice() : asPieces(sealed.slice(), cuts)
        assert.deepEqual(bytesOf(keyed.chaCha20Poly1305Decrypt(sealedInput, nonce, ad, key)), plaintext)
        assert.deepEqual(bytesOf(defaultCrypto.chaCha20Poly1305Decrypt(sealed.slice(), nonce, ad, key)), plaintext)
      }), { numRuns: 60 })
  })

  it('refuses a message with a flipped bit, another key, nonce or associated data', () => {
    const keyed = keyedNoiseCrypto()
    const key = new Uint8Array(randomBytes(32))
    const nonce = new Uint8Array(12)
    const ad = Uint8Array.of(1, 2, 3)
    for (const size of [100, 1200, 65_519]) {
      const plaintext = new Uint8Array(randomBytes(size))
      const sealed = bytesOf(keyed.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key))
      const flipped = sealed.slice()
      flipped[Math.floor(size / 2)]! ^= 1
      assert.throws(() => keyed.chaCha20Poly1305Decrypt(flipped, nonce, ad, key))
      assert.throws(() => keyed.chaCha20Poly1305Decrypt(sealed.slice(), nonce, ad, new Uint8Array(randomBytes(32))))
      assert.throws(() => keyed.chaCha20Poly1305Decrypt(sealed.slice(), Uint8Array.of(...nonce.subarray(0, 11), 1), ad, key))
      assert.throws(() => keyed.chaCha20Poly1305Decrypt(sealed.slice(), nonce, Uint8Array.of(1, 2, 4), key))
      // the cached key is the one its array holds: a second key of the same bytes opens it too
      assert.deepEqual(bytesOf(keyed.chaCha20Poly1305Decrypt(sealed.slice(), nonce, ad, key.slice())), plaintext)
    }
  })

  it('opens a message read in pieces into a list of pieces (no join) that libp2p-noise\'s own uint8arraylist takes', async () => {
    // libp2p-noise resolves its own copy (major 2) when it has one
    const noiseDir = dirname(fileURLToPath(import.meta.resolve('@chainsafe/libp2p-noise')))
    const nested = join(noiseDir, '..', '..', 'node_modules', 'uint8arraylist', 'dist', 'src', 'index.js')
    const { Uint8ArrayList: NoiseList } = await import(existsSync(nested) ? pathToFileURL(nested).href : 'uint8arraylist')
    const keyed = keyedNoiseCrypto()
    const key = new Uint8Array(randomBytes(32))
    const nonce = new Uint8Array(12)
    const plaintext = new Uint8Array(randomBytes(65_519))
    // sealed into one array: a socket writes each array with a system call of its own
    const wire = keyed.chaCha20Poly1305Encrypt(asPieces(plaintext, [30_000]), nonce, Uint8Array.of(), key)
    assert.ok(wire instanceof Uint8Array)
    assert.deepEqual(bytesOf(wire), bytesOf(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, Uint8Array.of(), key)))
    // as a socket delivers it: in two reads, opened without a join
    const opened = keyed.chaCha20Poly1305Decrypt(asPieces(wire, [40_000]), nonce, Uint8Array.of(), key)
    assert.ok(!(opened instanceof Uint8Array))
    const out = new NoiseList()
    out.append(opened)
    assert.deepEqual(bytesOf(out), plaintext)
    // one read, one array
    assert.ok(keyed.chaCha20Poly1305Decrypt(wire.slice(), nonce, Uint8Array.of(), key) instanceof Uint8Array)
  })

  it('opens a large message that arrived in two socket reads without first joining it (over real nodes)', async () => {
    // libp2p-noise joined such a message into one array only to offer it as the output's
    // destination, which OpenSSL does not use: a copy of nearly every byte received
    // (patches/ holds the change to libp2p-noise)
    const received: Array<{ bytes: number, dst: unknown }> = []
    const keyed = keyedNoiseCrypto()
    const recording: ICryptoInterface = {
      ...keyed,
      chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
        if (!(ciphertext instanceof Uint8Array) && ciphertext.byteLength >= 1200) received.push({ bytes: ciphertext.byteLength, dst })
        return keyed.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
      }
    }
    const start = async (crypto: ICryptoInterface): Promise<Libp2p> => {
      const node = await createLibp2p({
        privateKey: await generateKeyPair('Ed25519'),
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise({ crypto })],
        streamMuxers: [yamux()]
      })
      await node.start()
      return node
    }
    const server = await start(keyedNoiseCrypto())
    const client = await start(recording)
    try {
      const piece = new Uint8Array(randomBytes(1024 * 1024))
      const pieces = 8
      await server.handle('/keyfair-test/bulk/1.0.0', async (stream: Stream) => {
        for (let i = 0; i < pieces; i++) if (!stream.send(piece)) await drained(stream, { signal: AbortSignal.timeout(10_000) })
        await stream.close({ signal: AbortSignal.timeout(10_000) })
      })
      const stream = await client.dialProtocol(server.getMultiaddrs()[0]!, '/keyfair-test/bulk/1.0.0', { signal: AbortSignal.timeout(10_000) })
      stream.send(Uint8Array.of(1))
      const got = new Uint8ArrayList()
      for await (const buf of stream) got.append(buf)
      assert.equal(got.byteLength, pieces * piece.byteLength)
      assert.deepEqual(bytesOf(got.sublist(3 * piece.byteLength, 4 * piece.byteLength)), piece)
      // 64 KiB socket reads against messages of 64 KiB and 2 bytes: most messages span two
      assert.ok(received.length > pieces * 4, `${received.length} large messages arrived in pieces`)
      assert.deepEqual(received.filter(r => r.dst !== undefined).map(r => r.bytes), [])
    } finally {
      await client.stop()
      await server.stop()
    }
  })
})
