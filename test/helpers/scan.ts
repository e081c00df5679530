// Scans repos for key material in clear: PEM and DER private keys (whole files, base64
// and hex runs) and given secrets raw, hex or base64; and collects a repo's secrets by
// unsealing them with the product's own code, so a scan knows what to look for.
import { createPrivateKey } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { base64urlToBigint, i2osp, byteLength } from '../../device/crypto/index.ts'
import { KeyStore } from '../../device/store/keystore.ts'
import { fileExists } from '../../device/store/files.ts'
import { decodeContentKey } from '../../node/keys/content-key.ts'
import { AGENCY_CA_KEY, ESCROW_KEY, NodeKeyStore } from '../../node/keys/keystore.ts'
import type { KeyObject } from 'node:crypto'

export interface Secret { name: string, bytes: Uint8Array }

export async function filesUnder (root: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name)
    if (entry.isDirectory()) out.push(...await filesUnder(path))
    else if (entry.isFile()) out.push(path)
  }
  return out.sort()
}

/** The private parts of an RSA key (d, p, q), big-endian, as a scan looks for them */
export function privateParts (name: string, key: KeyObject): Secret[] {
  const jwk = key.export({ format: 'jwk' })
  return (['d', 'p', 'q'] as const).map(part => {
    const x = base64urlToBigint(String(jwk[part]))
    return { name: `${name} ${part}`, bytes: i2osp(x, byteLength(x)) }
  })
}

export interface Finding { file: string, what: string }

/**
 * Looks through every file for a private key or one of `secrets`: PEM private keys, any file
 * or base64/hex run that parses as a DER private key, and each secret raw, hex or base64.
 */
export async function scan (roots: string[], secrets: Secret[]): Promise<Finding[]> {
  const findings: Finding[] = []
  const forms = secrets.flatMap(({ name, bytes }) => {
    const b = Buffer.from(bytes)
    return [
      { what: `${name} (raw)`, needle: b },
      { what: `${name} (hex)`, needle: Buffer.from(b.toString('hex')) },
      { what: `${name} (HEX)`, needle: Buffer.from(b.toString('hex').toUpperCase()) },
      // the middle of a base64 run is the same wherever the run starts (mod 3): look for all three alignments
      ...[0, 1, 2].map(shift => ({ what: `${name} (base64)`, needle: Buffer.from(b.subarray(shift).toString('base64').slice(4, -4)) })),
      ...[0, 1, 2].map(shift => ({ what: `${name} (base64url)`, needle: Buffer.from(b.subarray(shift).toString('base64url').slice(4, -4)) }))
    ]
  })
  for (const root of roots) {
    for (const file of await filesUnder(root)) {
      // the libp2p identity is kept as kubo keeps it: protobuf, 0600 (the documented exception)
      if (file === join(root, 'identity.key')) continue
      const data = await readFile(file)
      const where = relative(root, file)
      if (data.includes('PRIVATE KEY-----')) findings.push({ file: where, what: 'PEM private key' })
      if (parsesAsPrivateKey(data)) findings.push({ file: where, what: 'DER private key (whole file)' })
      const text = data.toString('latin1')
      for (const run of text.match(/[A-Za-z0-9+/_-]{64,}={0,2}/g) ?? []) {
        if (parsesAsPrivateKey(Buffer.from(run, run.includes('-') || run.includes('_') ? 'base64url' : 'base64'))) findings.push({ file: where, what: 'base64 private key' })
      }
      for (const run of text.match(/(?:[0-9a-fA-F]{2}){32,}/g) ?? []) {
        if (parsesAsPrivateKey(Buffer.from(run, 'hex'))) findings.push({ file: where, what: 'hex private key' })
      }
      for (const { what, needle } of forms) {
        if (needle.length > 0 && data.includes(needle)) findings.push({ file: where, what })
      }
    }
  }
  return findings
}

function parsesAsPrivateKey (data: Buffer): boolean {
  if (data.length < 64) return false
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      createPrivateKey({ key: data, format: 'der', type })
      return true
    } catch {}
  }
  try {
    createPrivateKey({ key: data, format: 'pem' })
    return true
  } catch {}
  return false
}

/**
 * Every secret a repo holds, unsealed with its passphrase: the agency CA key, the escrow
 * key and each content key from the node's key store, and the device's two keys
 */
export async function repoSecrets (repo: string, passphrase: string): Promise<Secret[]> {
  const secrets: Secret[] = []
  const name = repo.split('/').at(-1) ?? repo
  if (await fileExists(join(repo, 'keys', 'keystore.cbor'))) {
    const keys = await new NodeKeyStore(join(repo, 'keys')).unlock(passphrase)
    try {
      for (const [label, record] of [['agency CA', AGENCY_CA_KEY], ['escrow', ESCROW_KEY]] as const) {
        const key = await keys.getPrivateKey(record)
        if (key != null) secrets.push(...privateParts(`${name} ${label}`, key))
      }
      for (const file of await readdir(join(repo, 'keys'))) {
        const match = /^(content-.+)\.sealed$/.exec(file)
        if (match == null) continue
        const content = decodeContentKey((await keys.get(match[1]!))!)
        secrets.push({ name: `${name} ${match[1]!}`, bytes: content.key })
      }
    } finally {
      keys.lock()
    }
  }
  if (await fileExists(join(repo, 'device', 'keystore.cbor'))) {
    const device = await new KeyStore(join(repo, 'device')).open(Buffer.from(passphrase))
    secrets.push(...privateParts(`${name} device signing`, device.signingKey), ...privateParts(`${name} device encryption`, device.encryptionKey))
  }
  return secrets
}
