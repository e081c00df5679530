// Cross-checks against independent implementations: the openssl CLI (OpenSSL 3) and
// python3 with the `cryptography` package. Data passes through files and stdin, never a shell.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  blind, chunkAad, chunkNonce, combineShares, escrowKeyForTerms, generateContentSecrets,
  i2ospMod, importRsaPrivateKey, priceExponent, rawPrivate, rawPublic, sealChunk, shareKek,
  splitSecret, toHex, unwrapDeviceKey, wrapDeviceKey, wrapShare
} from '../../device/crypto/index.ts'
import type { KeyObject } from 'node:crypto'
import { generateRsa, loadVectors, vectorKey } from './fixtures.ts'
import type { TestKey } from './fixtures.ts'

const V = loadVectors()

function available (cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Runs a python snippet that reads JSON on stdin and prints JSON */
function python<T> (script: string, input: unknown): T {
  const out = execFileSync('python3', ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' })
  return JSON.parse(out) as T
}

function hexOf (x: bigint): string {
  return x.toString(16)
}

describe('cross-checks with openssl and python cryptography', function () {
  this.timeout(60_000)
  const hasOpenssl = available('openssl', ['version'])
  const hasPython = available('python3', ['-c', 'import cryptography.hazmat.primitives.ciphers.aead'])
  let dir = ''
  let escrowKey: KeyObject
  let big: TestKey

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyfair-openssl-'))
    escrowKey = importRsaPrivateKey(vectorKey(V.escrow_key))
    // the default escrow size
    big = generateRsa(3072)
  })

  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  function writePem (name: string, key: KeyObject): string {
    const path = join(dir, name)
    writeFileSync(path, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    return path
  }

  function opensslDecrypt (keyPath: string, input: Uint8Array, opts: string[]): Uint8Array {
    return opensslPkeyutl('-decrypt', keyPath, input, opts)
  }

  function opensslPkeyutl (op: '-decrypt' | '-encrypt', keyPath: string, input: Uint8Array, opts: string[]): Uint8Array {
    const inPath = join(dir, 'in.bin')
    const outPath = join(dir, 'out.bin')
    writeFileSync(inPath, input)
    const args = ['pkeyutl', op, '-inkey', keyPath, '-in', inPath, '-out', outPath]
    for (const o of opts) args.push('-pkeyopt', o)
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    const out = new Uint8Array(readFileSync(outPath))
    rmSync(outPath)
    return out
  }

  it('raw RSA private op agrees with openssl pkeyutl (no padding)', function () {
    assert.ok(hasOpenssl, "the openssl CLI is required for this cross-check")
    const { n } = vectorKey(V.escrow_key)
    const keyPath = writePem('escrow.pem', escrowKey)
    for (let i = 0; i < 3; i++) {
      const b = rawPublic(BigInt('0x' + toHex(randomBytes(200))), 65537n, n)
      const z = rawPrivate(escrowKey, b, n)
      const theirs = opensslDecrypt(keyPath, i2ospMod(b, n), ['rsa_padding_mode:none'])
      assert.equal(toHex(theirs), toHex(i2ospMod(z, n)))
    }
  })

  it('the price-bound key (e_T, d_T) gives the same private op in openssl', function () {
    assert.ok(hasOpenssl, "the openssl CLI is required for this cross-check")
    const { n, p, q } = vectorKey(V.escrow_key)
    const eT = BigInt('0x' + (V.price_exponent[0]?.e_T_int ?? ''))
    const keyT = escrowKeyForTerms({ n, p, q }, eT)
    const keyPath = writePem('escrow-t.pem', keyT)
    const b = BigInt('0x' + V.blinding.b_int)
    const theirs = opensslDecrypt(keyPath, i2ospMod(b, n), ['rsa_padding_mode:none'])
    assert.equal(toHex(theirs), toHex(i2ospMod(rawPrivate(keyT, b, n), n)))
    assert.equal(BigInt('0x' + toHex(theirs)).toString(16), V.blinding.z_int)
  })

  it('d_T and the private op at 3072 bits agree with python pow()', function () {
    assert.ok(hasPython, "python3 with the cryptography package is required for this cross-check")
    const { n, p, q } = big.params
    const cid = new Uint8Array(randomBytes(36))
    const eT = priceExponent(cid)
    const keyT = escrowKeyForTerms({ n, p, q }, eT)
    const x = BigInt('0x' + toHex(randomBytes(300))) % n
    const c = rawPublic(x, eT, n)
    const { b } = blind(c, eT, n)
    const z = rawPrivate(keyT, b, n)
    const res = python<{ e: string, z: string, x_from_c: string }>(`
import json, sys, math, hashlib, random
a = json.load(sys.stdin)
n, p, q, b, c = (int(a[k], 16) for k in ('n', 'p', 'q', 'b', 'c'))
cid = bytes.fromhex(a['cid'])
def is_prime(m):
    if m < 2: return False
    for s in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if m % s == 0: return m == s
    d, r = m - 1, 0
    while d % 2 == 0: d, r = d // 2, r + 1
    rng = random.Random(1)
    for _ in range(40):
        y = pow(rng.randrange(2, m - 1), d, m)
        if y in (1, m - 1): continue
        for _ in range(r - 1):
            y = pow(y, 2, m)
            if y == m - 1: break
        else: return False
    return True
h = hashlib.sha256(b'keyfair/v1/e' + cid).digest()
e = int.from_bytes(h[:16], 'big') | (1 << 127) | 1
while not is_prime(e): e += 2
d = pow(e, -1, math.lcm(p - 1, q - 1))
print(json.dumps({'e': hex(e)[2:], 'z': hex(pow(b, d, n))[2:], 'x_from_c': hex(pow(c, d, n))[2:]}))
`, { n: hexOf(n), p: hexOf(p), q: hexOf(q), b: hexOf(b), c: hexOf(c), cid: toHex(cid) })
    assert.equal(res.e, hexOf(eT))
    assert.equal(res.z, hexOf(z))
    assert.equal(res.x_from_c, hexOf(x))
  })

  it('RSA-OAEP-SHA256 (MGF1-SHA256) interoperates with openssl both ways', function () {
    assert.ok(hasOpenssl, "the openssl CLI is required for this cross-check")
    const deviceKey = importRsaPrivateKey(vectorKey(V.device_bound.device_key))
    const keyPath = writePem('device.pem', deviceKey)
    const oaep = ['rsa_padding_mode:oaep', 'rsa_oaep_md:sha256', 'rsa_mgf1_md:sha256']
    const kDev = new Uint8Array(randomBytes(32))
    const ct = wrapDeviceKey(kDev, deviceKey)
    assert.equal(toHex(opensslDecrypt(keyPath, ct, oaep)), toHex(kDev))
    // and openssl's encryption unwraps here
    assert.equal(toHex(unwrapDeviceKey(opensslPkeyutl('-encrypt', keyPath, kDev, oaep), deviceKey)), toHex(kDev))
    // the vector's ciphertext too
    assert.equal(toHex(opensslDecrypt(keyPath, Buffer.from(V.device_bound.oaep_sha256_ciphertext, 'hex'), oaep)), V.device_bound.K_dev)
  })

  it('HKDF-SHA256 kek agrees with openssl kdf', function () {
    assert.ok(hasOpenssl, "the openssl CLI is required for this cross-check")
    const { n } = vectorKey(V.escrow_key)
    for (const j of [1, 2, 300]) {
      const x = BigInt('0x' + toHex(randomBytes(100)))
      const salt = new Uint8Array(randomBytes(16))
      const info = Buffer.concat([Buffer.from('keyfair/v1/share'), Buffer.from([j >> 8, j & 0xff])])
      const out = execFileSync('openssl', [
        'kdf', '-keylen', '32', '-kdfopt', 'digest:SHA256',
        '-kdfopt', `hexkey:${toHex(i2ospMod(x, n))}`, '-kdfopt', `hexsalt:${toHex(salt)}`,
        '-kdfopt', `hexinfo:${info.toString('hex')}`, 'HKDF'
      ], { encoding: 'utf8' })
      assert.equal(out.trim().replace(/:/g, '').toLowerCase(), toHex(shareKek(x, n, j, salt)))
    }
  })

  it('a sealed chunk and a share DEM decrypt with python AESGCM', function () {
    assert.ok(hasPython, "python3 with the cryptography package is required for this cross-check")
    const s = generateContentSecrets()
    const plaintext = new Uint8Array(randomBytes(1000))
    const index = 70000
    const chunk = sealChunk({ ...s, index, last: true, plaintext })
    const { n } = vectorKey(V.escrow_key)
    const x = BigInt('0x' + toHex(randomBytes(200)))
    const share = splitSecret(new Uint8Array(randomBytes(32)), 2, 3)[2] ?? new Uint8Array()
    const contentSalt = new Uint8Array(randomBytes(16))
    const offerSalt = new Uint8Array(randomBytes(16))
    const eT = priceExponent(Uint8Array.of(4, 2))
    const { dem } = wrapShare({ n, eT, j: 3, share, contentSalt, offerSalt, x })
    const res = python<{ pt: string, pt2: string, share: string }>(`
import json, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
a = json.load(sys.stdin)
h = bytes.fromhex
pt = AESGCM(h(a['key'])).decrypt(h(a['nonce']), h(a['chunk']), h(a['aad']))
# the chunk layout from first principles
nonce2 = h(a['prefix']) + a['index'].to_bytes(4, 'big')
aad2 = h(a['salt']) + a['index'].to_bytes(4, 'big') + bytes([1])
pt2 = AESGCM(h(a['key'])).decrypt(nonce2, h(a['chunk']), aad2)
kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=h(a['csalt']), info=b'keyfair/v1/share' + (3).to_bytes(2, 'big')).derive(h(a['ikm']))
dem = h(a['dem'])
share = AESGCM(kek).decrypt(dem[:12], dem[12:], h(a['osalt']) + (3).to_bytes(2, 'big'))
print(json.dumps({'pt': pt.hex(), 'pt2': pt2.hex(), 'share': share.hex()}))
`, {
      key: toHex(s.key),
      nonce: toHex(chunkNonce(s.noncePrefix, index)),
      aad: toHex(chunkAad(s.salt, index, true)),
      chunk: toHex(chunk),
      prefix: toHex(s.noncePrefix),
      salt: toHex(s.salt),
      index,
      ikm: toHex(i2ospMod(x, n)),
      csalt: toHex(contentSalt),
      osalt: toHex(offerSalt),
      dem: toHex(dem)
    })
    assert.equal(res.pt, toHex(plaintext))
    assert.equal(res.pt2, toHex(plaintext))
    assert.equal(res.share, toHex(share))
  })

  it('Shamir shares interpolate to the secret in python', function () {
    assert.ok(hasPython, "python3 with the cryptography package is required for this cross-check")
    const secret = new Uint8Array(randomBytes(32))
    const shares = splitSecret(secret, 4, 7)
    const res = python<string>(`
import json, sys
P = 2**521 - 1
shares = [bytes.fromhex(s) for s in json.load(sys.stdin)]
pts = [(int.from_bytes(s[:2], 'big'), int.from_bytes(s[2:], 'big')) for s in shares]
acc = 0
for i, (xi, yi) in enumerate(pts):
    num = den = 1
    for m, (xm, _) in enumerate(pts):
        if m != i:
            num = num * xm % P
            den = den * (xm - xi) % P
    acc = (acc + yi * num * pow(den, -1, P)) % P
print(json.dumps(acc.to_bytes(32, 'big').hex()))
`, [shares[6], shares[1], shares[3], shares[0]].map((s) => toHex(s ?? new Uint8Array())))
    assert.equal(res, toHex(secret))
    assert.equal(toHex(combineShares([shares[6], shares[1], shares[3], shares[0]] as Uint8Array[], 4)), toHex(secret))
  })
})
