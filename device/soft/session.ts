// The unlocked state of the software sealed device: its secrets, its clock and its key
// store, shared by the parts of the device. Only the device's own objects hold it; what
// crosses the SealedDevice interface is built from it, never it.
import { X509Certificate } from 'node:crypto'
import { DeviceLockedError, NotEnrolledError } from '../errors.ts'
import type { DeviceSecrets, KeyStore } from '../store/keystore.ts'

/** The public files the device keeps beside its sealed keys */
export const CERT_FILES = { signing: 'signing.crt', encryption: 'encryption.crt', root: 'root.crt' } as const

export class DeviceSession {
  readonly store: KeyStore
  readonly now: () => number
  private secrets?: DeviceSecrets
  /** the signing certificate's DER, read once per unlock (every request carries it) */
  private signingCertificateDer?: Uint8Array
  /** what each part of the device drops when the secrets go */
  private readonly forgetters: Array<() => void> = []

  constructor (store: KeyStore, now: () => number) {
    this.store = store
    this.now = now
  }

  get isUnlocked (): boolean {
    return this.secrets != null
  }

  /** The secrets, or DeviceLockedError */
  unlocked (): DeviceSecrets {
    if (this.secrets == null) throw new DeviceLockedError()
    return this.secrets
  }

  /** Replaces the secrets, dropping everything derived from the previous ones */
  enter (secrets: DeviceSecrets): void {
    this.forget()
    this.secrets = secrets
  }

  /** Registers what a part of the device must drop on lock (and on a new unlock) */
  onForget (forget: () => void): void {
    this.forgetters.push(forget)
  }

  /** Drops the secrets; KeyObjects cannot be wiped from JS, so they are only released */
  forget (): void {
    if (this.secrets != null) this.secrets.recordKey.fill(0)
    this.secrets = undefined
    this.signingCertificateDer = undefined
    for (const forget of this.forgetters) forget()
  }

  /** Installed certificates change the one requests carry: read it again */
  certificatesChanged (): void {
    this.signingCertificateDer = undefined
  }

  async signingCertificate (): Promise<Uint8Array> {
    if (this.signingCertificateDer != null) return this.signingCertificateDer
    const pem = await this.store.readPublic(CERT_FILES.signing)
    if (pem == null) throw new NotEnrolledError()
    const der = new Uint8Array(new X509Certificate(pem).raw)
    // only while unlocked: lock and unlock read it again
    if (this.secrets != null) this.signingCertificateDer = der
    return der
  }
}
