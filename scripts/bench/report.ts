/**
 * What every benchmark row shares: paired runs of a subject and its baseline in the
 * same process run, medians and spreads, the ratio and its target, the machine, and the table.
 */
import { availableParallelism, cpus, totalmem } from 'node:os'

export interface Samples { value: number[], baseline: number[] }

export interface Row {
  id: string
  measures: string
  unit: string
  /** unit of the baseline when it differs from the subject's */
  baselineUnit?: string
  value: number
  baseline: number
  /** value / baseline (for rows without a baseline, the value itself) */
  ratio: number
  target: string
  pass: boolean
  samples: Samples
  /** anything else worth keeping in the JSON (breakdowns, sizes) */
  details?: Record<string, unknown>
  /** why the row was not measured (nothing to measure it with here): neither a pass nor a miss */
  skipped?: string
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return 0
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const spread = (xs: number[]): string => xs.length === 0 ? '—' : `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`

export function fmt (x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2)
}

/**
 * Alternates baseline and subject runs so drift in machine load hits both alike; every
 * other pair runs the subject first, so neither always inherits the other's warm state.
 */
export async function paired (runs: number, subject: (i: number) => Promise<number>, baseline: (i: number) => Promise<number>, onRun?: (i: number, value: number, base: number) => void): Promise<Samples> {
  const out: Samples = { value: [], baseline: [] }
  for (let i = 0; i < runs; i++) {
    let base: number
    let value: number
    if (i % 2 === 0) {
      base = await baseline(i)
      value = await subject(i)
    } else {
      value = await subject(i)
      base = await baseline(i)
    }
    out.baseline.push(base)
    out.value.push(value)
    onRun?.(i, value, base)
  }
  return out
}

export interface RowSpec {
  id: string
  measures: string
  unit: string
  baselineUnit?: string
  samples: Samples
  /** true when a bigger ratio is better (throughput), false for latency or memory */
  higherIsBetter: boolean
  target: number
  /** an absolute target with no baseline (P5): the ratio is the value itself */
  absolute?: boolean
  /** a second condition the row must also meet to pass, named in its target */
  also?: { text: string, holds: boolean }
  details?: Record<string, unknown>
}

export function row (spec: RowSpec): Row {
  const value = median(spec.samples.value)
  const baseline = spec.absolute === true ? spec.target : median(spec.samples.baseline)
  const ratio = spec.absolute === true ? value : value / baseline
  const pass = (spec.higherIsBetter ? ratio >= spec.target : ratio <= spec.target) && (spec.also?.holds ?? true)
  const main = spec.absolute === true
    ? `${spec.higherIsBetter ? '≥' : '≤'} ${spec.target} ${spec.unit}`
    : `${spec.higherIsBetter ? '≥' : '≤'} ${spec.target}×`
  const target = spec.also != null ? `${main}; ${spec.also.text}` : main
  return { id: spec.id, measures: spec.measures, unit: spec.unit, baselineUnit: spec.baselineUnit, value, baseline, ratio, target, pass, samples: spec.samples, details: spec.details }
}

/** A row that could not be measured on this machine */
export function skippedRow (spec: { id: string, measures: string, unit: string, target: string }, why: string): Row {
  return { ...spec, value: 0, baseline: 0, ratio: 0, pass: false, samples: { value: [], baseline: [] }, skipped: why }
}

/**
 * Whether this machine has the cores for rows whose targets differ with them (P4): below
 * 8, a buyer, its device, the providers and the swarm share too few cores for three
 * providers to go faster than one, and the row only checks they are no slower.
 */
export function manyCores (): boolean {
  return availableParallelism() >= 8
}

/** The machine a run was measured on, kept in the JSON and shown above the table and chart */
export interface Machine {
  node: string
  cpus: number
  cpu?: string
  memoryGiB: number
}

export function machineOf (): Machine {
  return { node: process.version, cpus: availableParallelism(), cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10 }
}

export function machineLine (m: Machine): string {
  return `machine: Node ${m.node}, ${m.cpus} cores${m.cpu != null ? ` (${m.cpu.trim()})` : ''}, ${m.memoryGiB} GiB memory`
}

export function table (rows: Row[], machine?: Machine): string {
  const lines = [
    ['id', 'measures', 'value (median)', 'baseline (median)', 'ratio', 'target', 'result', 'spread (value)'],
    ...rows.map(r => r.skipped != null ? [r.id, r.measures, `skipped: ${r.skipped}`, '—', '—', r.target, 'skipped', '—'] : [
      r.id,
      r.measures,
      `${fmt(r.value)} ${r.unit}`,
      r.samples.baseline.length === 0 ? '—' : `${fmt(r.baseline)} ${r.baselineUnit ?? r.unit}`,
      r.samples.baseline.length === 0 ? '—' : `${r.ratio.toFixed(2)}×`,
      r.target,
      r.pass ? 'pass' : 'MISS',
      spread(r.samples.value)
    ])
  ]
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map(line => line[i]!.length)))
  const header = machine != null ? `${machineLine(machine)}\n\n` : ''
  return header + lines.map(line => line.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n'
}
