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
  'CryptoError', // abstract family of the crypto layer
  'PkiError', // abstract family of the X.509 layer
  'RenewalRefusedError', // the refusing escrow's code
  'EscrowError', // abstract family of the escrow's refusals
  'BuyError', // abstract family of the buyer's refusals
  'LicenceRefusedError' // the refusing seller's code
])

/** Codes the docs name that no class carries: the control API's answer to a fault it did not expect */
const CODES_WITHOUT_CLASS = new Set(['ERR_INTERNAL'])

/** `new XError(…, 'ERR_…')`: an error built with a literal code, arguments spanning lines included */
const LITERAL_CODE_AT_THROW = /new (\w*Error)\(((?:[^()]|\((?:[^()]|\([^()]*\))*\))*?)'(ERR_\w+)'/g

function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

/** Each error built with a literal code: where, its class and the code */
function literalCodes (): Array<{ where: string, cls: string, code: string }> {
  const found: Array<{ where: string, cls: string, code: string }> = []
  for (const path of LAYERS.flatMap(layer => sourceFiles(join(ROOT, layer)))) {
    const text = readFileSync(path, 'utf8')
    for (const match of text.matchAll(LITERAL_CODE_AT_THROW)) {
      const line = text.slice(0, match.index).split('\n').length
      found.push({ where: `${relative(ROOT, path)}:${line}`, cls: match[1]!, code: match[3]! })
    }
  }
  return found
}

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

  it('walks every class that declares a code, each with a name', function () {
    const walked = new Set(classes.filter(c => c.cls.name.length > 0).map(c => c.cls.code))
    const declared = LAYERS.flatMap(layer => sourceFiles(join(ROOT, layer)))
      .filter(path => !path.includes('/bin/') && !path.endsWith('-worker.ts'))
      .flatMap(path => [...readFileSync(path, 'utf8').matchAll(/static readonly code = '(ERR_\w+)'/g)].map(m => `${relative(ROOT, path)}: ${m[1]!}`))
    assert.ok(declared.length > 80, `only ${declared.length} declared codes found`)
    assert.deepEqual(declared.filter(d => !walked.has(d.split(': ')[1])), [])
  })

  it('names no literal code where an error is built: each code is its class\'s', function () {
    const literal = literalCodes()
      .map(({ where, cls, code }) => `${where}: new ${cls}(…, '${code}')`)
    assert.deepEqual(literal, [])
  })

  it('finds a literal code where one is built (the check can fail)', function () {
    const sample = "throw new SampleError(\n  `a ${'message'}`,\n  'ERR_SAMPLE')"
    assert.deepEqual([...sample.matchAll(LITERAL_CODE_AT_THROW)].map(m => m[3]), ['ERR_SAMPLE'])
  })

  it('gives every code the docs name a class', function () {
    const classCodes = new Set(classes.map(c => c.cls.code).filter(code => typeof code === 'string'))
    const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => join('docs', f))]
    const named = new Set(docs.flatMap(file => [...readFileSync(join(ROOT, file), 'utf8').matchAll(/`(ERR_[A-Z0-9_]*[A-Z0-9])`/g)].map(m => m[1]!)))
    const orphans = [...named].filter(code => !classCodes.has(code) && !CODES_WITHOUT_CLASS.has(code))
    assert.deepEqual(orphans, [])
  })
})
