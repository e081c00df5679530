// Signs the escrow's answers with its libp2p peer key, exactly as signWithPeerKey
// would (same signing input, same envelope, and Ed25519 signatures are
// deterministic, so the same bytes), but with the key imported once as a node:crypto
// KeyObject instead of once per signature.
import { createPrivateKey, sign as cryptoSign } from 'node:crypto'
import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { signWithPeerKey, signingInput } from '../../device/objects/signed.ts'
import type { PeerSignedKind, Signed } from '../../device/objects/signed.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'

export type PeerSigner = <T>(kind: PeerSignedKind, body: T) => Promise<Signed<T, PeerSignedKind>>

export function peerSigner (key: PrivateKey): PeerSigner {
  if (key.type !== 'Ed25519' || key.raw.length !== 64) return async (kind, body) => signWithPeerKey(kind, body, key)
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
  // libp2p's raw Ed25519 private key is seed ‖ public key
  const keyObject: KeyObject = createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: b64(key.raw.subarray(0, 32)), x: b64(key.raw.subarray(32)) } })
  const signer = { peer: publicKeyToProtobuf(key.publicKey) }
  return async (kind, body) => {
    const sig = cryptoSign(null, signingInput(kind, body), keyObject)
    return { v: 1, kind, body, signer: { peer: signer.peer }, sig: new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength) }
  }
}
