// Checks a request's arguments and calls the device: the only way in from the wire.
import { BadDeviceRequestError } from './errors.ts'
import { createShapeChecks } from './objects/validate.ts'
import type { PlayProgress, SealedDevice } from './interface.ts'

const check = createShapeChecks(message => new BadDeviceRequestError(message))
const MAX_OBJECT = 16 * 1024 * 1024
const MAX_MANIFEST = 64 * 1024 * 1024
const MAX_PATH = 4096

export async function dispatch (device: SealedDevice, op: string, rawArgs: unknown, onProgress: (p: PlayProgress) => void): Promise<unknown> {
  const args = check.expectRecord(rawArgs ?? {}, 'args')
  const purchase = (): string => check.expectString(args.purchase, 'purchase', 64)
  const passphrase = (): string => check.expectString(args.passphrase, 'passphrase', 1024)
  switch (op) {
    case 'status': return device.status()
    case 'initialise': {
      const init: Parameters<SealedDevice['initialise']>[0] = { passphrase: passphrase() }
      if (args.bits !== undefined) init.bits = check.expectUint(args.bits, 'bits', 8192)
      if (args.kdf !== undefined) {
        const kdf = check.expectRecord(args.kdf, 'kdf')
        init.kdf = { N: check.expectUint(kdf.N, 'kdf.N'), r: check.expectUint(kdf.r, 'kdf.r', 64), p: check.expectUint(kdf.p, 'kdf.p', 16) }
      }
      return device.initialise(init)
    }
    case 'unlock': return device.unlock({ passphrase: passphrase() })
    case 'lock': return device.lock()
    case 'certificateRequests': return device.certificateRequests()
    case 'installCertificates': return device.installCertificates({
      signing: check.expectString(args.signing, 'signing', 16384),
      encryption: check.expectString(args.encryption, 'encryption', 16384),
      root: check.expectString(args.root, 'root', 16384)
    })
    case 'certificates': return device.certificates()
    case 'beginPurchase': {
      const begin: Parameters<SealedDevice['beginPurchase']>[0] = {
        offer: check.expectBytes(args.offer, 'offer', MAX_OBJECT, 1),
        manifest: check.expectBytes(args.manifest, 'manifest', MAX_MANIFEST, 1),
        buyer: check.expectString(args.buyer, 'buyer', 128)
      }
      if (args.licence !== undefined) begin.licence = check.expectBytes(args.licence, 'licence', MAX_OBJECT, 1)
      return device.beginPurchase(begin)
    }
    case 'prepareShares': return device.prepareShares({ offer: check.expectBytes(args.offer, 'offer', MAX_OBJECT, 1) })
    case 'requestShare': return device.requestShare({ purchase: purchase(), j: check.expectUint(args.j, 'j', 0xffff) })
    case 'requestShares': return device.requestShares({ purchase: purchase(), js: check.expectArray(args.js, 'js', 64).map(j => check.expectUint(j, 'j', 0xffff)) })
    case 'acceptAnswer': return device.acceptAnswer({
      purchase: purchase(),
      j: check.expectUint(args.j, 'j', 0xffff),
      answer: check.expectBytes(args.answer, 'answer', MAX_OBJECT, 1)
    })
    case 'renewalRequest': return device.renewalRequest({ content: check.expectString(args.content, 'content', 200) })
    case 'renew': return device.renew({ content: check.expectString(args.content, 'content', 200), renewal: check.expectBytes(args.renewal, 'renewal', MAX_OBJECT, 1) })
    case 'completePurchase': return device.completePurchase({ purchase: purchase() })
    case 'receipt': return device.receipt({ purchase: purchase() })
    case 'dispute': {
      const reason = args.reason
      if (reason !== 'key' && reason !== 'chunk') throw new BadDeviceRequestError('reason must be key or chunk')
      const dispute: Parameters<SealedDevice['dispute']>[0] = { purchase: purchase(), reason }
      if (args.chunk !== undefined) {
        const chunk = check.expectRecord(args.chunk, 'chunk')
        dispute.chunk = { index: check.expectUint(chunk.index, 'chunk.index', 2 ** 32 - 1), data: check.expectBytes(chunk.data, 'chunk.data', MAX_OBJECT) }
      }
      return device.dispute(dispute)
    }
    case 'purchase': return device.purchase({ purchase: purchase() })
    case 'purchases': return device.purchases(args.offer === undefined ? {} : { offer: check.expectString(args.offer, 'offer', 200) })
    case 'library': return device.library()
    case 'play': {
      const play: Parameters<SealedDevice['play']>[0] = {
        content: check.expectString(args.content, 'content', 200),
        manifest: check.expectBytes(args.manifest, 'manifest', MAX_MANIFEST, 1),
        input: check.expectString(args.input, 'input', MAX_PATH),
        output: check.expectString(args.output, 'output', MAX_PATH)
      }
      if (args.available !== undefined) play.available = check.expectUint(args.available, 'available', 2 ** 32 - 1)
      return device.play(play, onProgress)
    }
    case 'playFeed': {
      const feed: Parameters<SealedDevice['playFeed']>[0] = { content: check.expectString(args.content, 'content', 200) }
      if (args.available !== undefined) feed.available = check.expectUint(args.available, 'available', 2 ** 32 - 1)
      if (args.stopped !== undefined) {
        if (typeof args.stopped !== 'boolean') throw new BadDeviceRequestError('stopped must be a boolean')
        feed.stopped = args.stopped
      }
      return device.playFeed(feed)
    }
    default: throw new BadDeviceRequestError(`unknown device operation ${JSON.stringify(op).slice(0, 64)}`)
  }
}
