// Entry of the sealed device process: `node device/process.ts --store <dir>`.
// Speaks only the framed wire of wire.ts on stdin/stdout; logs (DEBUG=keyfair:*) go
// to stderr and never carry key material. Exits when its stdin closes (the node
// stopped or died), dropping its secrets with the process.
import { flushCompileCache } from 'node:module'
import { parseArgs } from 'node:util'
import { logger } from '@libp2p/logger'
import { dispatch } from './dispatch.ts'
import { FrameDecoder, encodeFrame } from './wire.ts'
import { SoftDevice } from './soft-device.ts'
import { KeyStore } from './store/keystore.ts'
import type { DeviceReply } from './wire.ts'

const log = logger('keyfair:device:process')
// the modules are loaded: their compile-cache entries (when the node enabled the cache)
// go to disk now, not only when this device exits
flushCompileCache()
const { values } = parseArgs({ options: { store: { type: 'string' } } })
if (values.store == null) {
  process.stderr.write('usage: device/process.ts --store <dir>\n')
  process.exit(2)
}

const device = new SoftDevice({ store: new KeyStore(values.store) })
const decoder = new FrameDecoder()
// operations run one at a time, so a purchase record is never written by two at once;
// status and play run beside them (play only reads, and may take minutes), and so does
// playFeed, which a following play waits on
let queue: Promise<unknown> = Promise.resolve()
const CONCURRENT = new Set(['status', 'play', 'playFeed'])

function send (reply: DeviceReply): void {
  process.stdout.write(encodeFrame(reply))
}

function handle (message: unknown): void {
  const m = message as { id?: unknown, op?: unknown, args?: unknown }
  if (m == null || typeof m !== 'object' || typeof m.id !== 'number' || typeof m.op !== 'string') {
    log.error('dropping a malformed request')
    return
  }
  const id = m.id
  const op = m.op
  const run = async (): Promise<void> => {
    try {
      const result = await dispatch(device, op, m.args, progress => { send({ id, progress: { ...progress } }) })
      send({ id, ok: true, result: result ?? null })
    } catch (err: any) {
      send({ id, ok: false, error: describe(op, err) })
    }
  }
  if (CONCURRENT.has(op)) {
    void run()
  } else {
    queue = queue.then(run)
  }
}

/** Typed errors carry fixed texts; file errors name the path; anything else only its operation */
function describe (op: string, err: any): { code: string, message: string } {
  if (typeof err?.code === 'string' && err.code.startsWith('ERR_') && !err.code.startsWith('ERR_OSSL')) {
    return { code: err.code, message: String(err.message) }
  }
  if (typeof err?.syscall === 'string') return { code: 'ERR_DEVICE_FILE', message: `${op}: ${String(err.message)}` }
  log.error('%s failed - %s', op, err?.name)
  return { code: 'ERR_DEVICE_INTERNAL', message: `device operation ${op} failed` }
}

process.stdin.on('data', (piece: Buffer) => {
  try {
    for (const message of decoder.push(piece)) handle(message)
  } catch (err: any) {
    log.error('broken framing on stdin: %s', err.code)
    process.exit(1)
  }
})
process.stdin.on('end', () => {
  void queue.then(async () => device.lock()).finally(() => process.exit(0))
})
log('device process %d serving store %s', process.pid, values.store)
