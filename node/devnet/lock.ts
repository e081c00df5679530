// One devnet per directory: its pid in <dir>/devnet.pid while it runs. A file left by a
// devnet that died (its pid no longer alive) is taken over.
import { constants } from 'node:fs'
import { mkdir, open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { KeyfairError } from '../errors.ts'
import { isProcessAlive } from '../repo.ts'

export class DevnetRunningError extends KeyfairError {
  static readonly code = 'ERR_DEVNET_RUNNING'
  constructor (dir: string, pid: number) {
    super(`a devnet (pid ${pid}) is already running in ${dir}: stop it (Ctrl-C, or kill ${pid}) or use another --dir`, DevnetRunningError.code)
  }
}

/** Takes the directory for this process; resolves to the release */
export async function lockDevnetDir (dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true })
  const file = join(dir, 'devnet.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644)
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      return async () => { await rm(file, { force: true }) }
    } catch (err: any) {
      if (err.code !== 'EEXIST') throw err
      const holder = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10)
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isProcessAlive(holder)) throw new DevnetRunningError(dir, holder)
      await rm(file, { force: true })
    }
  }
  throw new DevnetRunningError(dir, -1)
}
