/**
 * What the bench reads of other processes from Linux's /proc: CPU time (to say where a
 * row's time went) and peak resident memory.
 */
import { readFile, writeFile } from 'node:fs/promises'

/** A process (all its threads), or one thread of it: `{ pid, thread: pid }` is its main thread */
export type CpuSubject = number | { pid: number, thread: number }

/** user + system CPU of a process or thread, and the system part, ms; undefined where /proc is missing */
async function cpuMsOf (subject: CpuSubject): Promise<{ total: number, system: number } | undefined> {
  const path = typeof subject === 'number' ? `/proc/${subject}/stat` : `/proc/${subject.pid}/task/${subject.thread}/stat`
  try {
    const stat = await readFile(path, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields 14 and 15 of stat (utime, stime), counted from the state field (3)
    const system = Number(fields[12]) * 10
    return { total: Number(fields[11]) * 10 + system, system }
  } catch {
    return undefined
  }
}

/**
 * CPU ms of each named process from now until the returned function is called, and beside
 * each its kernel part as `<name>System` (file writes, socket calls, page faults)
 */
export async function cpuMeter (pids: Record<string, CpuSubject>): Promise<() => Promise<Record<string, number>>> {
  const before = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await cpuMsOf(pid)] as const)))
  return async () => {
    const spent: Record<string, number> = {}
    for (const [name, pid] of Object.entries(pids)) {
      const a = before[name]
      const b = await cpuMsOf(pid)
      if (a == null || b == null) continue
      spent[name] = b.total - a.total
      spent[`${name}System`] = b.system - a.system
    }
    return spent
  }
}

export async function childrenOf (pid: number): Promise<number[]> {
  return (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number)
}

/** Resets VmHWM of a process and its children to their current RSS (Linux clear_refs 5) */
export async function resetPeakRss (pid: number): Promise<void> {
  for (const p of [pid, ...await childrenOf(pid)]) await writeFile(`/proc/${p}/clear_refs`, '5')
}

/** One memory field of /proc/<pid>/status (`VmRSS`, `VmHWM`), in MB */
async function statusMB (pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1])
  if (!Number.isFinite(kb)) throw new Error(`no ${field} for pid ${pid}`)
  return kb / 1024
}

/** VmRSS of one process now, in MB */
export async function rss (pid: number): Promise<number> {
  return statusMB(pid, 'VmRSS')
}

/** VmHWM of a node process and of each of its children (the sealed device), in MB */
export async function peakRss (pid: number): Promise<{ node: number, children: number, total: number }> {
  const hwm = async (p: number): Promise<number> => statusMB(p, 'VmHWM')
  const children = await childrenOf(pid)
  const own = await hwm(pid)
  let rest = 0
  for (const c of children) rest += await hwm(c)
  return { node: own, children: rest, total: own + rest }
}
