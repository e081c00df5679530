import { readFileSync } from 'node:fs'

/**
 * The known-answer vectors of docs/protocol.md (Known-answer vectors), from an
 * independent implementation, kept in test/fixtures so a clone anywhere can run the
 * suite; vectors-copy.test.ts checks the copy against the upstream file wherever a
 * checkout has that file beside it.
 */
export const VECTORS_FILE = new URL('../fixtures/vectors-v1.json', import.meta.url)
export const SHARED_VECTORS_FILE = new URL('../../../shared/vectors/v1.json', import.meta.url)

export function loadVectors (): any {
  return JSON.parse(readFileSync(VECTORS_FILE, 'utf8'))
}
