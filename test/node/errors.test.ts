import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { pathToFileURL } from 'node:url'
import { KeyfairError } from '../../device/error-root.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const LAYERS = ['device', 'protocols', 'node']
const CODE = /^ERR_[A-Z0-9_]+$/

/**
 * Classes that carry a code given at run time, so they have no static one: an error frame's
 * or the control API's code, the device process's, or a family never thrown itself.
 */
const CARRIERS = new Set([
  'RemoteError', // the remote's code from an error frame
  'ControlApiError', // the node's code from the control API
  'DeviceError', // the sealed device process's code
  'CertificateError', // a certificate check's code, as the agency client meets it
  'CryptoError', // abstract family of the crypto layer
  'PkiError', // abstract family of the X.509 layer
  'RenewalRefusedError', // the refusing escrow's code
  'CommandFailedError', // the code a CLI command printed
  'EscrowError', // family of the escrow's refusals
  // families whose members still name their codes where they are thrown
  'BuyError',
  'ContentError',
  'MediaError',
  'PublishError'
])

/**
 * One meaning spelled twice: the CLI's usage error carries the command whose help applies,
 * the node's does not. Each is ERR_USAGE to the user.
 */
const SAME_MEANING = new Set(['ERR_USAGE'])

/** Source files that declare an exported class: bin scripts and workers are left out (they run on import) */
function errorModules (dir: string): string[] {
  const found: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'bin') found.push(...errorModules(path))
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('-worker.ts')) {
      const text = readFileSync(path, 'utf8')
      if (entry.name.endsWith('errors.ts') || /export (abstract )?class \w+ extends \w*Error\b/.test(text)) found.push(path)
    }
  }
  return found
}

interface ErrorClass { exportName: string, module: string, cls: Function & { code?: unknown } }

async function errorClasses (): Promise<ErrorClass[]> {
  const seen = new Map<Function, ErrorClass>()
  for (const path of LAYERS.flatMap(layer => errorModules(join(ROOT, layer)))) {
    const exports: Record<string, unknown> = await import(pathToFileURL(path).href)
    for (const [exportName, value] of Object.entries(exports)) {
      if (typeof value !== 'function' || !(value.prototype instanceof KeyfairError)) continue
      // a re-export is the same class: it is checked where it is declared
      if (!seen.has(value)) seen.set(value, { exportName, module: relative(ROOT, path), cls: value })
    }
  }
  return [...seen.values()]
}

describe('error classes', function () {
  let classes: ErrorClass[]

  before(async function () {
    classes = await errorClasses()
  })

  it('finds the error classes of every layer', function () {
    const modules = new Set(classes.map(c => c.module.split('/')[0]))
    for (const layer of LAYERS) assert.ok(modules.has(layer), `no error class found under ${layer}/`)
    assert.ok(classes.length > 80, `only ${classes.length} error classes found`)
  })

  it('names each class as it is exported', function () {
    for (const { exportName, module, cls } of classes) {
      assert.ok(cls.name.length > 0, `${module}: ${exportName} has no name`)
      assert.equal(cls.name, exportName, `${module}: ${exportName} is named ${cls.name}`)
    }
  })

  it('gives each class a stable code', function () {
    const wrong = classes
      .filter(({ exportName, cls }) => !CARRIERS.has(exportName) && !CODE.test(String(cls.code)))
      .map(({ exportName, module, cls }) => `${module}: ${exportName} has code ${String(cls.code)}`)
    assert.deepEqual(wrong, [])
  })

  it('gives each meaning its own code: classes share one only along an extends chain', function () {
    const byCode = new Map<string, ErrorClass[]>()
    for (const c of classes) {
      if (typeof c.cls.code !== 'string') continue
      byCode.set(c.cls.code, [...(byCode.get(c.cls.code) ?? []), c])
    }
    const related = (a: Function, b: Function): boolean => a.prototype instanceof b || b.prototype instanceof a
    const shared: string[] = []
    for (const [code, sharing] of byCode) {
      if (SAME_MEANING.has(code)) continue
      sharing.forEach((a, i) => {
        for (const b of sharing.slice(i + 1)) {
          if (!related(a.cls, b.cls)) shared.push(`${code} is both ${a.module}: ${a.exportName} and ${b.module}: ${b.exportName}`)
        }
      })
    }
    assert.deepEqual(shared, [])
  })

  it('makes an instance whose name and code are its class\'s', function () {
    for (const { exportName, cls } of classes) {
      // a carrier takes its code, and some classes build their message from arguments
      if (CARRIERS.has(exportName) || cls.length > 0 || cls.code == null) continue
      const err = new (cls as new () => KeyfairError)()
      assert.equal(err.name, exportName)
      assert.equal(err.code, cls.code)
      assert.ok(err.message.length > 0, `${exportName} has an empty default message`)
    }
  })
})
