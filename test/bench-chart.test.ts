// The bench's SVG chart (scripts/bench/chart.ts): well-formed XML whatever a row's text
// holds, one bar per row with its target marker, the result as a word beside the colour,
// skipped rows shown as skipped, and the machine as the caption.
import assert from 'node:assert/strict'
import { chart, escapeXml } from '../scripts/bench/chart.ts'
import { machineLine, row, skippedRow } from '../scripts/bench/report.ts'
import { findAll, parseXml, XmlError } from './helpers/xml.ts'
import type { Machine, Row } from '../scripts/bench/report.ts'
import type { XmlElement } from './helpers/xml.ts'

const MACHINE: Machine = { node: 'v24.0.0', cpus: 2, cpu: 'Some CPU <model> & "co"', memoryGiB: 23.5 }

const ROWS: Row[] = [
  row({ id: 'P1', measures: 'download <vs> raw & "stream"', unit: 'MB/s', samples: { value: [70, 80], baseline: [100, 100] }, higherIsBetter: true, target: 0.85 }),
  row({ id: 'P3', measures: 'key release latency', unit: 'ms', samples: { value: [200], baseline: [100] }, higherIsBetter: false, target: 1.3 }),
  row({ id: 'P5', measures: 'buyer peak RSS', unit: 'MB', samples: { value: [150], baseline: [] }, higherIsBetter: false, target: 200, absolute: true }),
  skippedRow({ id: 'P7', measures: 'ledger on PostgreSQL', unit: 'req/s', target: '≥ 0.8×' }, 'no <PostgreSQL> & friends')
]

const hasClass = (name: string) => (el: XmlElement): boolean => (el.attrs.class ?? '').split(' ').includes(name)
const textOf = (el: XmlElement): string => el.text + el.children.map(textOf).join('')

describe('bench chart (SVG)', function () {
  const svg = parseXml(chart(ROWS, MACHINE))

  it('is well-formed XML with an svg root', function () {
    assert.equal(svg.name, 'svg')
    assert.equal(svg.attrs.xmlns, 'http://www.w3.org/2000/svg')
  })

  it('draws one bar per row, a target marker on each measured one, and a skipped row as skipped', function () {
    const bars = findAll(svg, hasClass('bar'))
    assert.deepEqual(bars.map(b => b.attrs['data-row']), ['P1', 'P3', 'P5', 'P7'])
    assert.deepEqual(bars.map(b => b.attrs.class), ['bar miss', 'bar miss', 'bar pass', 'bar skipped'])
    assert.equal(findAll(svg, hasClass('target')).length, 3)
    const p7 = findAll(svg, el => el.name === 'g' && el.attrs['data-row'] === 'P7')[0]!
    assert.match(textOf(p7), /skipped: no <PostgreSQL> & friends/)
  })

  it('says pass, MISS or skipped in words beside the colour', function () {
    const results = findAll(svg, hasClass('result')).map(textOf)
    assert.deepEqual(results.map(r => r.split(' ')[0]), ['MISS', 'MISS', 'pass', 'skipped'])
    assert.match(results[2]!, /target ≤ 200 MB/)
  })

  it('labels a bar with its ratio, or its value where the row has no baseline', function () {
    const all = textOf(svg)
    assert.match(all, /0\.75×/)
    assert.match(all, /150 MB/)
    assert.match(all, /P1 download <vs> raw & "stream"/)
  })

  it('has the machine line as its caption', function () {
    const caption = findAll(svg, hasClass('caption'))
    assert.equal(caption.length, 1)
    assert.equal(textOf(caption[0]!), machineLine(MACHINE))
    assert.match(machineLine(MACHINE), /2 cores .*23\.5 GiB memory/)
  })

  it('escapes text, and the checker refuses what is not well-formed', function () {
    assert.equal(escapeXml(`<a href="x">&'`), '&#60;a href=&#34;x&#34;&#62;&#38;&#39;')
    for (const bad of ['<a>x & y</a>', '<a><b></a></b>', '<a x="1" x="2"/>', '<a x="<"/>', '<a>', '<a/><b/>', '<a>&bogus;</a>']) {
      assert.throws(() => parseXml(bad), XmlError, bad)
    }
  })
})
