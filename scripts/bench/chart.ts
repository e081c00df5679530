/**
 * The bench's results as an SVG chart, written beside the JSON: one horizontal bar per
 * row (its ratio, or its value where the row has no baseline: P5's MB) on the row's own
 * scale, the target as a marker on it, and the result as a word as well as a colour, so
 * the chart reads the same without colour. Hand-written SVG: no dependency for one file.
 */
import { fmt, machineLine } from './report.ts'
import type { Machine, Row } from './report.ts'

const WIDTH = 760
const ROW_HEIGHT = 34
const TOP = 40
const LABEL_X = 12
const BAR_X = 300
const BAR_WIDTH = 300
const RESULT_X = BAR_X + BAR_WIDTH + 16
const COLOURS = { pass: '#2e7d32', miss: '#c62828', skipped: '#9e9e9e' } as const

/** Text and attribute values: the five characters XML gives meaning to */
export function escapeXml (text: string): string {
  return text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

type Result = keyof typeof COLOURS

const resultOf = (r: Row): Result => r.skipped != null ? 'skipped' : r.pass ? 'pass' : 'miss'

/** The number in a row's target ("≥ 0.85×", "≤ 200 MB"); undefined where it has none */
function targetOf (r: Row): number | undefined {
  const n = /\d+(?:\.\d+)?/.exec(r.target)
  return n == null ? undefined : Number(n[0])
}

/** What the bar shows: the ratio, or the value itself for a row without a baseline */
function shown (r: Row): { value: number, label: string } {
  return r.samples.baseline.length === 0
    ? { value: r.value, label: `${fmt(r.value)} ${r.unit}` }
    : { value: r.ratio, label: `${r.ratio.toFixed(2)}×` }
}

/** At most `max` characters, the cut marked; the bar's title keeps the whole text */
function clip (s: string, max: number): string {
  const chars = [...s]
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`
}

function text (x: number, y: number, body: string, attrs = ''): string {
  return `<text x="${x}" y="${y}"${attrs}>${escapeXml(body)}</text>`
}

function skippedBar (r: Row, y: number): string[] {
  return [
    `<rect class="bar skipped" data-row="${escapeXml(r.id)}" x="${BAR_X}" y="${y}" width="${BAR_WIDTH}" height="18" fill="none" stroke="${COLOURS.skipped}" stroke-dasharray="4 3"/>`,
    text(BAR_X + 8, y + 13, `skipped: ${r.skipped ?? ''}`, ` fill="${COLOURS.skipped}"`)
  ]
}

function measuredBar (r: Row, y: number): string[] {
  const { value, label } = shown(r)
  const target = targetOf(r)
  // the row's own scale: room for the larger of value and target, and a margin
  const scale = BAR_WIDTH / (Math.max(value, target ?? 0) * 1.2 || 1)
  const width = Math.max(1, value * scale)
  const colour = COLOURS[resultOf(r)]
  const marker = target != null ? BAR_X + target * scale : BAR_X
  const parts = [
    `<rect class="bar ${resultOf(r)}" data-row="${escapeXml(r.id)}" x="${BAR_X}" y="${y}" width="${width.toFixed(1)}" height="18" fill="${colour}"><title>${escapeXml(`${r.id} ${r.measures}: ${label}, target ${r.target}`)}</title></rect>`,
    // right of both the bar and the marker, so neither covers it
    text(Math.round(Math.max(BAR_X + width, marker) + 6), y + 13, label)
  ]
  if (target != null) {
    const x = marker.toFixed(1)
    parts.push(`<line class="target" x1="${x}" x2="${x}" y1="${y - 4}" y2="${y + 22}" stroke="#000" stroke-width="2"/>`)
  }
  return parts
}

function rowGroup (r: Row, i: number): string {
  const y = TOP + i * ROW_HEIGHT
  const result = resultOf(r)
  return [
    `<g class="row" data-row="${escapeXml(r.id)}">`,
    text(LABEL_X, y + 13, clip(`${r.id} ${r.measures}`, 40)),
    ...(r.skipped != null ? skippedBar(r, y) : measuredBar(r, y)),
    text(RESULT_X, y + 13, `${result === 'miss' ? 'MISS' : result} (target ${r.target})`, ` class="result" fill="${COLOURS[result]}"`),
    '</g>'
  ].join('\n')
}

/** The whole chart: a title, one group per row, the machine as the caption */
export function chart (rows: Row[], machine: Machine): string {
  const height = TOP + rows.length * ROW_HEIGHT + 30
  const caption = machineLine(machine)
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12" role="img" aria-label="${escapeXml(`keyfair bench results; ${caption}`)}">`,
    '<rect width="100%" height="100%" fill="#fff"/>',
    text(LABEL_X, 22, 'keyfair bench: each row against its target (black marker)', ' font-size="14" font-weight="bold"'),
    ...rows.map(rowGroup),
    text(LABEL_X, height - 10, caption, ' class="caption" fill="#444"'),
    '</svg>',
    ''
  ].join('\n')
}
