// Repos made before keys were sealed keep them in plaintext files: the agency's
// `agency/ca.key`, the escrow's `escrow/escrow.key`, a seller's `seller/<cid>.key`. On the
// first start with the passphrase each is sealed into the key store, read back to check,
// and only then overwritten and removed.
import { createPrivateKey } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { ownBytes } from '../../device/crypto/aead.ts'
import { bytesEqual, fromHex } from '../../device/crypto/bytes.ts'
import { fileExists } from '../../device/store/files.ts'
import { BadConfigError } from '../errors.ts'
import { AGENCY_CA_KEY, ESCROW_KEY, contentKeyName, wipeFile } from './keystore.ts'
import { encodeContentKey } from './content-key.ts'
import type { UnlockedKeys } from './keystore.ts'
import type { Logger } from '@libp2p/interface'

interface PlaintextKey {
  file: string
  record: string
  /** the secret as the record holds it */
  secret: Uint8Array
}

/** Plaintext key files left in a repo by an earlier version */
export async function findPlaintextKeys (repoPath: string): Promise<string[]> {
  const found: string[] = []
  for (const file of [join(repoPath, 'agency', 'ca.key'), join(repoPath, 'escrow', 'escrow.key')]) {
    if (await fileExists(file)) found.push(file)
  }
  found.push(...(await sellerKeyFiles(repoPath)).map(f => f.file))
  return found
}

/**
 * Seals every plaintext key file of the repo into `keys` and wipes the file. All files are
 * parsed before anything is written, so a damaged one stops the start with nothing changed.
 * Returns the files sealed.
 */
export async function sealPlaintextKeys (repoPath: string, keys: UnlockedKeys, log: Logger): Promise<string[]> {
  const pending: PlaintextKey[] = []
  for (const [file, record] of [[join(repoPath, 'agency', 'ca.key'), AGENCY_CA_KEY], [join(repoPath, 'escrow', 'escrow.key'), ESCROW_KEY]] as const) {
    if (!(await fileExists(file))) continue
    let der: Uint8Array
    try {
      der = ownBytes(createPrivateKey(await readFile(file)).export({ type: 'pkcs8', format: 'der' }))
    } catch (err) {
      throw new BadConfigError(`${file} does not hold a private key: it was not sealed`, { cause: err })
    }
    pending.push({ file, record, secret: der })
  }
  for (const { file, cid } of await sellerKeyFiles(repoPath)) {
    let secret: Uint8Array
    try {
      const o = JSON.parse(await readFile(file, 'utf8'))
      const key = fromHex(String(o.key))
      const salt = fromHex(String(o.salt))
      if (key.length !== 32 || salt.length === 0) throw new Error('key is not 32 bytes')
      secret = encodeContentKey({ key, salt, offers: Array.isArray(o.offers) ? o.offers.map(String) : [] })
      key.fill(0)
    } catch (err) {
      throw new BadConfigError(`${file} does not hold a content key: it was not sealed`, { cause: err })
    }
    pending.push({ file, record: contentKeyName(cid), secret })
  }
  const sealed: string[] = []
  for (const item of pending) {
    const secret = item.secret
    try {
      const existing = await keys.get(item.record)
      if (existing != null && !bytesEqual(existing, secret)) {
        existing.fill(0)
        throw new BadConfigError(`${item.file} differs from the key already sealed as ${item.record}: move one of them away`)
      }
      existing?.fill(0)
      if (existing == null) {
        await keys.put(item.record, secret)
        const back = await keys.get(item.record)
        const same = back != null && bytesEqual(back, secret)
        back?.fill(0)
        if (!same) throw new BadConfigError(`sealing ${item.file} did not read back: the plaintext is kept`)
      }
    } finally {
      secret.fill(0)
    }
    await wipeFile(item.file)
    log('sealed %s into the key store as %s and removed the plaintext', item.file, item.record)
    sealed.push(item.file)
  }
  return sealed
}

async function sellerKeyFiles (repoPath: string): Promise<Array<{ file: string, cid: string }>> {
  const dir = join(repoPath, 'seller')
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err: any) {
    if (err.code === 'ENOENT') return []
    throw err
  }
  const files: Array<{ file: string, cid: string }> = []
  for (const name of names.sort()) {
    if (!name.endsWith('.key')) continue
    const cid = name.slice(0, -'.key'.length)
    try {
      CID.parse(cid)
    } catch {
      continue
    }
    files.push({ file: join(dir, name), cid })
  }
  return files
}
