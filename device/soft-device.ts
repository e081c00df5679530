// The software sealed device (docs/protocol.md, Sealed device): the patent's tamper-resistant module as a
// component behind the SealedDevice interface. It runs inside the device process;
// its secrets live in that process's memory and, sealed, in its key store. This class
// only composes its parts (device/soft/): the keys' lifecycle, the purchase records and
// steps, disputes, and the player; none of them is reachable from outside it.
import { Blinding } from './soft/blinding.ts'
import { Disputes } from './soft/disputes.ts'
import { KeyLifecycle } from './soft/key-lifecycle.ts'
import { Player } from './soft/player.ts'
import { PurchaseRecords } from './soft/purchase-records.ts'
import { Purchases } from './soft/purchases.ts'
import { DeviceSession } from './soft/session.ts'
import type {
  AnswerVerdict, CertificateRequests, DeviceCertificates, DeviceStatus, LicenceInfo, PlayProgress,
  PurchaseInfo, RenewalRequestInfo, SealedDevice
} from './interface.ts'
import type { DisputeArgs } from './soft/disputes.ts'
import type { PlayArgs } from './soft/player.ts'
import type { KdfParams, KeyStore } from './store/keystore.ts'

export interface SoftDeviceInit {
  store: KeyStore
  /** clock for request and receipt timestamps; tests may move it */
  now?: () => number
}

export class SoftDevice implements SealedDevice {
  readonly #session: DeviceSession
  readonly #keys: KeyLifecycle
  readonly #records: PurchaseRecords
  readonly #blinding: Blinding
  readonly #purchases: Purchases
  readonly #disputes: Disputes
  readonly #player: Player

  constructor (init: SoftDeviceInit) {
    this.#session = new DeviceSession(init.store, init.now ?? Date.now)
    this.#keys = new KeyLifecycle(this.#session)
    this.#records = new PurchaseRecords(this.#session)
    this.#blinding = new Blinding(this.#session, offer => this.#records.exponentOf(offer))
    this.#purchases = new Purchases(this.#session, this.#records, this.#blinding)
    this.#disputes = new Disputes(this.#session, this.#records)
    this.#player = new Player(this.#session)
  }

  async status (): Promise<DeviceStatus> {
    return await this.#keys.status()
  }

  async initialise (args: { passphrase: string, bits?: number, kdf?: KdfParams }): Promise<{ deviceId: string }> {
    return await this.#keys.initialise(args)
  }

  async unlock (args: { passphrase: string }): Promise<{ deviceId: string }> {
    return await this.#keys.unlock(args)
  }

  async lock (): Promise<void> {
    await this.#keys.lock()
  }

  async certificateRequests (): Promise<CertificateRequests> {
    return await this.#keys.certificateRequests()
  }

  async installCertificates (certificates: DeviceCertificates): Promise<void> {
    await this.#keys.installCertificates(certificates)
  }

  async certificates (): Promise<DeviceCertificates> {
    return await this.#keys.certificates()
  }

  async beginPurchase (args: { offer: Uint8Array, manifest: Uint8Array, licence?: Uint8Array, buyer: string }): Promise<PurchaseInfo> {
    return await this.#purchases.beginPurchase(args)
  }

  async prepareShares (args: { offer: Uint8Array }): Promise<{ preparing: number }> {
    return await this.#blinding.prepareShares(args)
  }

  async requestShare (args: { purchase: string, j: number }): Promise<{ request: Uint8Array }> {
    const { requests } = await this.#purchases.requestShares({ purchase: args.purchase, js: [args.j] })
    return { request: requests[0]! }
  }

  async requestShares (args: { purchase: string, js: number[] }): Promise<{ requests: Uint8Array[] }> {
    return await this.#purchases.requestShares(args)
  }

  async acceptAnswer (args: { purchase: string, j: number, answer: Uint8Array }): Promise<AnswerVerdict> {
    return await this.#purchases.acceptAnswer(args)
  }

  async completePurchase (args: { purchase: string }): Promise<LicenceInfo> {
    return await this.#purchases.completePurchase(args)
  }

  async receipt (args: { purchase: string }): Promise<{ receipt: Uint8Array }> {
    return await this.#purchases.receipt(args)
  }

  async dispute (args: DisputeArgs): Promise<{ dispute: Uint8Array }> {
    return await this.#disputes.dispute(args)
  }

  async purchase (args: { purchase: string }): Promise<PurchaseInfo> {
    this.#session.unlocked()
    return await this.#records.info(args.purchase)
  }

  async purchases (args: { offer?: string } = {}): Promise<PurchaseInfo[]> {
    this.#session.unlocked()
    return await this.#records.list(args.offer)
  }

  async library (): Promise<LicenceInfo[]> {
    return await this.#player.library()
  }

  async renewalRequest (args: { content: string }): Promise<RenewalRequestInfo> {
    return await this.#player.renewalRequest(args)
  }

  async renew (args: { content: string, renewal: Uint8Array }): Promise<LicenceInfo> {
    return await this.#player.renew(args)
  }

  async play (args: PlayArgs, onProgress?: (p: PlayProgress) => void): Promise<{ bytes: number }> {
    return await this.#player.play(args, onProgress)
  }

  async playFeed (args: { content: string, available?: number, stopped?: boolean }): Promise<void> {
    await this.#player.playFeed(args)
  }
}
