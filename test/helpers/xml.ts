/**
 * A small XML well-formedness checker for the documents the project writes (the bench's
 * SVG chart): elements, attributes, text, comments, the XML declaration and the five
 * predefined and numeric character references. No DTDs, CDATA or namespaces' meaning.
 * Throws on anything not well-formed; returns the element tree, entities decoded.
 */

export interface XmlElement {
  name: string
  attrs: Record<string, string>
  children: XmlElement[]
  /** the element's own text, references decoded (not its descendants') */
  text: string
}

const NAME = /^[A-Za-z_:][\w.:-]*/
const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

export class XmlError extends Error {}

/** Decodes references in text or an attribute value; a bare `&` or `<` is an error */
function decode (raw: string, where: number): string {
  if (raw.includes('<')) throw new XmlError(`'<' in text or an attribute value near ${where}`)
  return raw.replace(/&([^;]*);?/g, (match, ref: string) => {
    if (!match.endsWith(';')) throw new XmlError(`'&' not starting a reference near ${where}`)
    if (ref in PREDEFINED) return PREDEFINED[ref]!
    const n = /^#x([0-9a-fA-F]+)$/.exec(ref)?.[1] ?? /^#([0-9]+)$/.exec(ref)?.[1]
    if (n == null) throw new XmlError(`unknown reference &${ref}; near ${where}`)
    return String.fromCodePoint(parseInt(n, ref.startsWith('#x') ? 16 : 10))
  })
}

class Parser {
  private pos = 0
  private readonly src: string
  constructor (src: string) {
    this.src = src
  }

  parse (): XmlElement {
    this.skipProlog()
    const root = this.element()
    this.skipMisc()
    if (this.pos !== this.src.length) throw new XmlError(`content after the root element at ${this.pos}`)
    return root
  }

  private skipProlog (): void {
    if (this.src.startsWith('<?xml', this.pos)) this.skipPast('?>')
    this.skipMisc()
  }

  /** whitespace and comments, where they may stand outside the root */
  private skipMisc (): void {
    for (;;) {
      this.skipSpace()
      if (!this.src.startsWith('<!--', this.pos)) return
      this.comment()
    }
  }

  private comment (): void {
    const end = this.src.indexOf('-->', this.pos + 4)
    if (end < 0) throw new XmlError(`unclosed comment at ${this.pos}`)
    if (this.src.slice(this.pos + 4, end).includes('--')) throw new XmlError(`'--' inside a comment at ${this.pos}`)
    this.pos = end + 3
  }

  private skipPast (marker: string): void {
    const end = this.src.indexOf(marker, this.pos)
    if (end < 0) throw new XmlError(`no '${marker}' after ${this.pos}`)
    this.pos = end + marker.length
  }

  private skipSpace (): void {
    while (/\s/.test(this.src[this.pos] ?? '')) this.pos++
  }

  private name (): string {
    const m = NAME.exec(this.src.slice(this.pos))
    if (m == null) throw new XmlError(`a name expected at ${this.pos}`)
    this.pos += m[0].length
    return m[0]
  }

  private expect (s: string): void {
    if (!this.src.startsWith(s, this.pos)) throw new XmlError(`'${s}' expected at ${this.pos}`)
    this.pos += s.length
  }

  private attributes (): Record<string, string> {
    const attrs: Record<string, string> = {}
    for (;;) {
      const before = this.pos
      this.skipSpace()
      const c = this.src[this.pos]
      if (c === '>' || c === '/' || c == null) return attrs
      if (this.pos === before) throw new XmlError(`space expected before an attribute at ${this.pos}`)
      const name = this.name()
      if (name in attrs) throw new XmlError(`attribute ${name} twice at ${this.pos}`)
      this.skipSpace()
      this.expect('=')
      this.skipSpace()
      const quote = this.src[this.pos]
      if (quote !== '"' && quote !== "'") throw new XmlError(`quoted value expected at ${this.pos}`)
      const end = this.src.indexOf(quote, this.pos + 1)
      if (end < 0) throw new XmlError(`unclosed attribute value at ${this.pos}`)
      attrs[name] = decode(this.src.slice(this.pos + 1, end), this.pos)
      this.pos = end + 1
    }
  }

  private element (): XmlElement {
    this.expect('<')
    const el: XmlElement = { name: this.name(), attrs: {}, children: [], text: '' }
    el.attrs = this.attributes()
    if (this.src.startsWith('/>', this.pos)) {
      this.pos += 2
      return el
    }
    this.expect('>')
    this.content(el)
    this.expect('</')
    if (this.name() !== el.name) throw new XmlError(`</${el.name}> expected at ${this.pos}`)
    this.skipSpace()
    this.expect('>')
    return el
  }

  private content (el: XmlElement): void {
    for (;;) {
      const next = this.src.indexOf('<', this.pos)
      if (next < 0) throw new XmlError(`<${el.name}> is not closed`)
      el.text += decode(this.src.slice(this.pos, next), this.pos)
      this.pos = next
      if (this.src.startsWith('</', this.pos)) return
      if (this.src.startsWith('<!--', this.pos)) this.comment()
      else el.children.push(this.element())
    }
  }
}

export function parseXml (src: string): XmlElement {
  return new Parser(src).parse()
}

/** Every element of the tree, depth first, that satisfies the predicate */
export function findAll (root: XmlElement, match: (el: XmlElement) => boolean): XmlElement[] {
  const out = match(root) ? [root] : []
  for (const child of root.children) out.push(...findAll(child, match))
  return out
}
