// The device's keys over their life: generated and sealed (initialise), opened with the
// passphrase (unlock), dropped (lock), and enrolled with the agency (CSRs in, certificates
// checked against the device's own keys and stored).
import { X509Certificate, createPublicKey } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { BadDeviceRequestError, CertificateMismatchError, DeviceNotInitialisedError, NotEnrolledError } from '../errors.ts'
import { createCsr } from '../pki/csr.ts'
import { DEVICE_UNIT } from '../pki/names.ts'
import { CERT_FILES } from './session.ts'
import type { CertificateRequests, DeviceCertificates, DeviceStatus } from '../interface.ts'
import type { DeviceSecrets, KdfParams } from '../store/keystore.ts'
import type { DeviceSession } from './session.ts'
import type { KeyObject } from 'node:crypto'

export class KeyLifecycle {
  private readonly session: DeviceSession
  private readonly log = logger('keyfair:device:keys')

  constructor (session: DeviceSession) {
    this.session = session
  }

  async status (): Promise<DeviceStatus> {
    const { store } = this.session
    const initialised = await store.exists()
    const status: DeviceStatus = { initialised, unlocked: this.session.isUnlocked, enrolled: false }
    if (!initialised) return status
    status.deviceId = await store.deviceId()
    status.enrolled = (await store.readPublic(CERT_FILES.signing)) != null
    return status
  }

  async initialise (args: { passphrase: string, bits?: number, kdf?: KdfParams }): Promise<{ deviceId: string }> {
    const { deviceId } = await this.enterWith(args.passphrase, async passphrase =>
      await this.session.store.create(passphrase, { bits: args.bits, kdf: args.kdf }))
    this.log('initialised device %s', deviceId)
    return { deviceId }
  }

  async unlock (args: { passphrase: string }): Promise<{ deviceId: string }> {
    const { deviceId } = await this.enterWith(args.passphrase, async passphrase => await this.session.store.open(passphrase))
    this.log('unlocked device %s', deviceId)
    return { deviceId }
  }

  async lock (): Promise<void> {
    this.session.forget()
  }

  async certificateRequests (): Promise<CertificateRequests> {
    const secrets = this.session.unlocked()
    const subject = { commonName: secrets.deviceId, organizationalUnit: DEVICE_UNIT }
    return {
      deviceId: secrets.deviceId,
      signing: createCsr(secrets.signingKey, createPublicKey(secrets.signingKey), subject),
      encryption: createCsr(secrets.encryptionKey, createPublicKey(secrets.encryptionKey), subject)
    }
  }

  async installCertificates (certificates: DeviceCertificates): Promise<void> {
    const secrets = this.session.unlocked()
    const root = parseCertificate(certificates.root, 'root')
    const signing = parseCertificate(certificates.signing, 'signing')
    const encryption = parseCertificate(certificates.encryption, 'encryption')
    checkIssuedFor(signing, secrets.signingKey, root, 'signing')
    checkIssuedFor(encryption, secrets.encryptionKey, root, 'encryption')
    const { store } = this.session
    // the signing certificate last: its presence is what makes the device enrolled
    await store.writePublic(CERT_FILES.root, root.toString())
    await store.writePublic(CERT_FILES.encryption, encryption.toString())
    await store.writePublic(CERT_FILES.signing, signing.toString())
    this.session.certificatesChanged()
    this.log('installed certificates for device %s', secrets.deviceId)
  }

  async certificates (): Promise<DeviceCertificates> {
    const { store } = this.session
    if (!(await store.exists())) throw new DeviceNotInitialisedError()
    const [signing, encryption, root] = await Promise.all([
      store.readPublic(CERT_FILES.signing),
      store.readPublic(CERT_FILES.encryption),
      store.readPublic(CERT_FILES.root)
    ])
    if (signing == null || encryption == null || root == null) throw new NotEnrolledError()
    return { signing, encryption, root }
  }

  /** Opens (or creates) the secrets with the passphrase, wiping its bytes whatever happens */
  private async enterWith (text: string, open: (passphrase: Buffer) => Promise<DeviceSecrets>): Promise<DeviceSecrets> {
    const passphrase = Buffer.from(text, 'utf8')
    try {
      const secrets = await open(passphrase)
      this.session.enter(secrets)
      return secrets
    } finally {
      passphrase.fill(0)
    }
  }
}

function parseCertificate (pem: unknown, what: string): X509Certificate {
  if (typeof pem !== 'string') throw new BadDeviceRequestError(`the ${what} certificate must be PEM text`)
  try {
    return new X509Certificate(pem)
  } catch {
    throw new BadDeviceRequestError(`the ${what} certificate is not a valid X.509 certificate`)
  }
}

/** Throws unless the certificate is for this device key and issued by the root */
function checkIssuedFor (cert: X509Certificate, key: KeyObject, root: X509Certificate, what: string): void {
  const own = createPublicKey(key).export({ type: 'spki', format: 'der' })
  if (!own.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CertificateMismatchError(`the ${what} certificate is not for this device's ${what} key`)
  }
  if (!cert.checkIssued(root) || !cert.verify(root.publicKey)) {
    throw new CertificateMismatchError(`the ${what} certificate is not issued by the given root`)
  }
}
