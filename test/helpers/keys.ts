// The repo passphrase and key store of test nodes: a cheaper scrypt (the minimum the store
// accepts) so each start costs tens of milliseconds, not hundreds.
import { join } from 'node:path'
import { MIN_KDF_N } from '../../device/store/seal.ts'
import { NodeKeyStore } from '../../node/keys/keystore.ts'
import type { KdfParams, UnlockedKeys } from '../../node/keys/keystore.ts'

export const TEST_PASSPHRASE = 'keyfair test repo passphrase'
export const FAST_KDF: KdfParams = { N: MIN_KDF_N, r: 8, p: 1 }

/** The key store of the repo at `repoPath`, unlocked (created on first use, with FAST_KDF) */
export async function testKeys (repoPath: string, passphrase = TEST_PASSPHRASE): Promise<UnlockedKeys> {
  const store = new NodeKeyStore(join(repoPath, 'keys'))
  return await store.exists() ? store.unlock(passphrase) : store.create(passphrase, { kdf: FAST_KDF })
}
