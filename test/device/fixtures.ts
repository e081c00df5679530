// Shared helpers for the device crypto tests (not a test file itself)
import { generateKeyPairSync } from 'node:crypto'
import { loadVectors as loadSharedVectors } from '../helpers/vectors.ts'
import { fromHex } from '../../device/crypto/bytes.ts'
import { rsaPrivateParams } from '../../device/crypto/rsa.ts'
import type { RsaPrivateParams } from '../../device/crypto/rsa.ts'
import type { KeyObject } from 'node:crypto'

export interface RsaVectorKey {
  n_int: string
  e_int: string
  d_int: string
  p_int: string
  q_int: string
}

export interface Vectors {
  content: {
    K: string
    nonce_prefix: string
    salt: string
    works: Array<{
      chunk_size: number
      plaintext: string
      chunks: Array<{ ciphertext_and_tag: string, sha256: string }>
    }>
  }
  key_commitment: { K: string, kc: string }
  shamir: {
    secret: string
    t: number
    n: number
    coefficients_int: string[]
    shares: string[]
    any_3_rebuild: number[][]
  }
  escrow_key: RsaVectorKey
  price_exponent: Array<{ terms_cid: string, e_T_int: string, d_T_int: string }>
  share_wrap: {
    j: number
    share: string
    x_int: string
    content_salt: string
    offer_salt: string
    nonce: string
    kek: string
    c_int: string
    dem: string
  }
  blinding: {
    r_int: string
    b_int: string
    z_int: string
    x_int: string
    z_under_other_terms_int: string
  }
  device_bound: {
    K: string
    K_dev: string
    K_esc: string
    device_key: RsaVectorKey
    oaep_sha256_ciphertext: string
  }
}

export function loadVectors (): Vectors {
  return loadSharedVectors() as Vectors
}

export const hex = fromHex

export function int (h: string): bigint {
  return BigInt('0x' + h)
}

export function vectorKey (k: RsaVectorKey): RsaPrivateParams {
  return { n: int(k.n_int), e: int(k.e_int), d: int(k.d_int), p: int(k.p_int), q: int(k.q_int) }
}

export interface TestKey {
  privateKey: KeyObject
  publicKey: KeyObject
  params: RsaPrivateParams
}

export function generateRsa (bits: number): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits })
  return { privateKey, publicKey, params: rsaPrivateParams(privateKey) }
}

export async function collect<T> (source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of source) out.push(x)
  return out
}
