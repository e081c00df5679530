import { randomBytes } from 'node:crypto'
import { open, rename, stat } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * Writes to a temp file, fsyncs, renames over the target and fsyncs the directory,
 * so a crash leaves either the old file or the new one, never half of either.
 */
export async function writeFileAtomic (file: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const handle = await open(tmp, 'w', mode)
  try {
    await handle.writeFile(data)
    await handle.chmod(mode)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, file)
  const dir = await open(dirname(file), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/** Whether a path exists; errors other than "not there" are thrown */
export async function fileExists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err: any) {
    if (err.code === 'ENOENT') return false
    throw err
  }
}
