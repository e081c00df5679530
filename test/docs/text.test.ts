// The README and docs/ speak to users of the product: no notes on how it was built, no
// pointer to a file outside the repository, every relative link resolving, prose wrapped.
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const ROOT = resolve(new URL('../..', import.meta.url).pathname)
/** Built as two parts, so this file does not name what it looks for */
const OUTSIDE_DESIGN = ['DESIGN', 'md'].join('.')
const NOT_FOR_USERS = /\bstops?\b [0-9]|round [0-9]|the issue|workspace/i
const TEXT_EXTENSIONS = /\.(ts|js|mjs|cjs|json|md|txt|sh|yml|yaml)$/
const MAX_PROSE_LINE = 100

function userDocs (): string[] {
  const docs = readdirSync(join(ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => join(ROOT, 'docs', f))
  return [join(ROOT, 'README.md'), ...docs]
}

function repoTextFiles (dir = ROOT): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...repoTextFiles(path))
    else if (TEXT_EXTENSIONS.test(name)) out.push(path)
  }
  return out
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, '').replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

function anchorsOf (markdown: string): Set<string> {
  const anchors = new Set<string>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    if (fenced) continue
    const heading = /^#{1,6} (.+)$/.exec(line)
    if (heading != null) anchors.add(slug(heading[1]!))
    for (const id of line.matchAll(/<a id="([^"]+)"><\/a>/g)) anchors.add(id[1]!)
  }
  return anchors
}

/** Lines outside code blocks and tables: the prose a reader reads in a terminal */
function proseLines (markdown: string): Array<{ n: number, line: string }> {
  const out: Array<{ n: number, line: string }> = []
  let fenced = false
  markdown.split('\n').forEach((line, i) => {
    if (line.startsWith('```')) { fenced = !fenced; return }
    if (!fenced && !line.startsWith('|')) out.push({ n: i + 1, line })
  })
  return out
}

describe('README and docs/ for users', function () {
  it('say nothing of how the code came to be', function () {
    const found: string[] = []
    for (const file of userDocs()) {
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        if (NOT_FOR_USERS.test(line)) found.push(`${relative(ROOT, file)}:${i + 1}: ${line}`)
      })
    }
    assert.deepEqual(found, [])
  })

  it('no file of the repository points at a design file outside it', function () {
    const files = repoTextFiles()
    assert.ok(files.some(f => f.endsWith(join('docs', 'protocol.md'))), 'the walk found docs/protocol.md')
    const found = files.filter(f => readFileSync(f, 'utf8').includes(OUTSIDE_DESIGN)).map(f => relative(ROOT, f))
    assert.deepEqual(found, [])
  })

  it('every relative link resolves, to a file and, where it names one, to a heading', function () {
    const broken: string[] = []
    let checked = 0
    for (const file of userDocs()) {
      const text = readFileSync(file, 'utf8')
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1]!
        if (/^[a-z]+:/i.test(target)) continue
        checked++
        const [path, anchor] = target.split('#') as [string, string | undefined]
        const resolved = path === '' ? file : resolve(dirname(file), path)
        if (!existsSync(resolved)) {
          broken.push(`${relative(ROOT, file)}: ${target} (no such file)`)
          continue
        }
        if (anchor != null && anchor !== '' && resolved.endsWith('.md') && !anchorsOf(readFileSync(resolved, 'utf8')).has(anchor)) {
          broken.push(`${relative(ROOT, file)}: ${target} (no such heading)`)
        }
      }
    }
    assert.ok(checked > 10, `only ${checked} relative links found`)
    assert.deepEqual(broken, [])
  })

  it(`wrap prose at ${MAX_PROSE_LINE} characters`, function () {
    const long: string[] = []
    for (const file of userDocs()) {
      for (const { n, line } of proseLines(readFileSync(file, 'utf8'))) {
        if ([...line].length > MAX_PROSE_LINE) long.push(`${relative(ROOT, file)}:${n} (${[...line].length})`)
      }
    }
    assert.deepEqual(long, [])
  })
})
