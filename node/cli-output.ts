// What every CLI command shares: the global options, the repo they name, and how a result is
// printed (one JSON document with --json, else the human text).
import { Repo, resolveRepoPath } from './repo.ts'

export interface GlobalOptions {
  repo?: string
  json?: boolean
}

export function print (options: GlobalOptions, value: unknown, human: () => string): void {
  process.stdout.write(options.json === true ? JSON.stringify(value) + '\n' : human() + '\n')
}

export function repoOf (options: GlobalOptions): Repo {
  return new Repo(resolveRepoPath(options.repo))
}
