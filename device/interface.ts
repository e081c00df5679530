// The sealed device's interface (docs/protocol.md, Sealed device): messages in, messages out. Everything that
// crosses it is public or protected: CSRs and certificates, signed requests, receipts
// and disputes, public objects, and progress. Key material (the device keys, r_j, x_j,
// shares, K_dev, K) stays behind it; plaintext goes only to the sink named by `play`.
// The shape follows a token interface (PKCS#11 / TPM): a login with a PIN-like
// passphrase, keys generated and used inside, objects referenced by handle (purchase id,
// content id), so a hardware backend can implement the same methods.
import type { KdfParams } from './store/keystore.ts'

export interface DeviceStatus {
  initialised: boolean
  unlocked: boolean
  enrolled: boolean
  deviceId?: string
}

/** PKCS#10 CSRs (PEM) for the two device keys, signed by each key itself */
export interface CertificateRequests {
  deviceId: string
  signing: string
  encryption: string
}

/** PEM certificates issued by the agency for this device, and the agency root */
export interface DeviceCertificates {
  signing: string
  encryption: string
  root: string
}

export type PurchaseState = 'open' | 'complete' | 'failed' | 'confirmed' | 'disputed'

export interface PurchaseInfo {
  purchase: string
  /** CID of the signed offer */
  offer: string
  content: string
  state: PurchaseState
  /** share indices whose answers passed the check */
  accepted: number[]
  /** share indices requested and not yet answered correctly */
  pending: number[]
  /** share indices whose escrow answered wrongly (a fraud proof was made) */
  faulty: number[]
  t: number
  bound: boolean
  /**
   * A failed device-bound purchase: the part of the licence that fails its commitment
   * ('escrow': K_esc, 'device': K_dev, 'both': each part matches but K does not); a key
   * dispute opens only that part
   */
  fault?: 'escrow' | 'device' | 'both'
}

export interface LicenceInfo {
  content: string
  offer: string
  purchase: string
  title: string
  purchasedAt: number
  /** how long the licence plays offline after a purchase or renewal, in ms */
  licenceTtl: number
  /** plays until then (ms since the epoch); later only after a renewal */
  playUntil: number
  /** when an escrow last stated this device unrevoked, if ever */
  renewedAt?: number
}

/** A device-signed renewal request, and the escrows (peer ids, offer order) that may answer it */
export interface RenewalRequestInfo {
  request: Uint8Array
  offer: string
  escrows: string[]
}

export type AnswerVerdict =
  | { accepted: true, have: number, need: number }
  /** the answer failed x^e_T == c: a device-signed fraud dispute to present to that escrow */
  | { accepted: false, fraud: Uint8Array }

export interface PlayProgress {
  chunks: number
  chunkCount?: number
  bytes: number
}

export interface SealedDevice {
  status: () => Promise<DeviceStatus>
  /** Generates the signing and encryption keys inside the device and seals them */
  initialise: (args: { passphrase: string, bits?: number, kdf?: KdfParams }) => Promise<{ deviceId: string }>
  unlock: (args: { passphrase: string }) => Promise<{ deviceId: string }>
  lock: () => Promise<void>
  certificateRequests: () => Promise<CertificateRequests>
  installCertificates: (certificates: DeviceCertificates) => Promise<void>
  certificates: () => Promise<DeviceCertificates>
  /** Opens a purchase of a signed offer (and a device-bound licence, if any) for content with this manifest */
  beginPurchase: (args: { offer: Uint8Array, manifest: Uint8Array, licence?: Uint8Array, buyer: string }) => Promise<PurchaseInfo>
  /**
   * Draws the blinding factors of the offer's first t shares in the background, so the
   * requests of a purchase of it need only be signed; answers at once
   */
  prepareShares: (args: { offer: Uint8Array }) => Promise<{ preparing: number }>
  /** A device-signed unblind request for share j; asking again returns the same request */
  requestShare: (args: { purchase: string, j: number }) => Promise<{ request: Uint8Array }>
  /** Requests for several shares at once, sealed to disk in one write (the t escrows a purchase starts with) */
  requestShares: (args: { purchase: string, js: number[] }) => Promise<{ requests: Uint8Array[] }>
  acceptAnswer: (args: { purchase: string, j: number, answer: Uint8Array }) => Promise<AnswerVerdict>
  /** Rebuilds K from t checked shares, checks kc, and seals the licence */
  completePurchase: (args: { purchase: string }) => Promise<LicenceInfo>
  receipt: (args: { purchase: string }) => Promise<{ receipt: Uint8Array }>
  /**
   * A signed dispute for the escrows. A key dispute over a licence opens only the part at
   * fault (the shares of K_esc when no part is, so K stays hidden); a chunk dispute is
   * signed only for a chunk that matches the manifest and fails under the key
   * (ERR_CHUNK_HASH, ERR_CHUNK_DECRYPTS otherwise), and opens what rebuilds K
   */
  dispute: (args: { purchase: string, reason: 'key' | 'chunk', chunk?: { index: number, data: Uint8Array } }) => Promise<{ dispute: Uint8Array }>
  /** One purchase by id: what a buy in progress needs, without the whole history */
  purchase: (args: { purchase: string }) => Promise<PurchaseInfo>
  /** Every purchase, or only those of one offer (its CID) */
  purchases: (args?: { offer?: string }) => Promise<PurchaseInfo[]>
  library: () => Promise<LicenceInfo[]>
  /** A signed request to renew the licence of `content`, asking an escrow of its offer to state this device unrevoked */
  renewalRequest: (args: { content: string }) => Promise<RenewalRequestInfo>
  /** Extends the licence by its lifetime once an escrow of the offer has answered the pending request */
  renew: (args: { content: string, renewal: Uint8Array }) => Promise<LicenceInfo>
  /**
   * Decrypts a ciphertext file to `output` with a sealed licence; plaintext never crosses
   * the interface. With `available` below the chunk count it follows a download still
   * writing the file, in order, fed by `playFeed`.
   */
  play: (args: { content: string, manifest: Uint8Array, input: string, output: string, available?: number }, onProgress?: (p: PlayProgress) => void) => Promise<{ bytes: number }>
  /** Tells a following play that `available` chunks are on disk, or that its download stopped */
  playFeed: (args: { content: string, available?: number, stopped?: boolean }) => Promise<void>
}

export const DEVICE_OPERATIONS = [
  'status', 'initialise', 'unlock', 'lock', 'certificateRequests', 'installCertificates', 'certificates',
  'beginPurchase', 'prepareShares', 'requestShare', 'requestShares', 'acceptAnswer', 'completePurchase', 'receipt', 'dispute',
  'purchase', 'purchases', 'library', 'renewalRequest', 'renew', 'play', 'playFeed'
] as const satisfies ReadonlyArray<keyof SealedDevice>

export type DeviceOperation = typeof DEVICE_OPERATIONS[number]
