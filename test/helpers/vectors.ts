import { readFileSync } from 'node:fs'

/**
 * The known-answer vectors of DESIGN §2 (../shared/vectors/v1.json, from an
 * independent implementation). A copy lives in test/fixtures so a clone
 * anywhere can run the suite; vectors.test.ts checks the copy is identical to
 * the shared file wherever that file is present.
 */
export const VECTORS_FILE = new URL('../fixtures/vectors-v1.json', import.meta.url)
export const SHARED_VECTORS_FILE = new URL('../../../shared/vectors/v1.json', import.meta.url)

export function loadVectors (): any {
  return JSON.parse(readFileSync(VECTORS_FILE, 'utf8'))
}
