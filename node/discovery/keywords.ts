import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { BadRequestError } from '../errors.ts'

/** Keyword CIDs (docs/protocol.md, Keywords): are CIDv1/raw/sha2-256 of this prefix and the normalised word. */
const KEYWORD_PREFIX = 'keyfair/kw/v1:'
const ESCROW_SERVICE_WORD = 'keyfair/escrow/v1'

export const MAX_KEYWORD_LENGTH = 64
export const MAX_KEYWORDS = 32

export function normaliseKeyword (word: string): string {
  return word.normalize('NFKC').toLowerCase().trim()
}

function rawSha256Cid (text: string): CID {
  const digest = createHash('sha256').update(text, 'utf8').digest()
  return CID.createV1(raw.code, createDigest(sha256.code, digest))
}

/** The CID a keyword is provided under in the DHT. */
export function keywordCid (word: string): CID {
  const normalised = normaliseKeyword(word)
  if (normalised.length === 0) throw new BadRequestError('empty keyword')
  if (normalised.length > MAX_KEYWORD_LENGTH) throw new BadRequestError(`keyword longer than ${MAX_KEYWORD_LENGTH} characters`)
  return rawSha256Cid(KEYWORD_PREFIX + normalised)
}

/** The well-known CID every escrow provides (no keyword prefix). */
export function escrowServiceCid (): CID {
  return rawSha256Cid(ESCROW_SERVICE_WORD)
}

/**
 * The keywords of a title and tags: normalised, split on anything that is not a
 * letter, mark or digit, de-duplicated, in first-seen order.
 */
export function keywordsOf (...texts: string[]): string[] {
  const seen = new Set<string>()
  for (const text of texts) {
    for (const word of normaliseKeyword(text).split(/[^\p{L}\p{M}\p{N}]+/u)) {
      if (word.length > 0 && word.length <= MAX_KEYWORD_LENGTH) seen.add(word)
    }
  }
  const keywords = [...seen]
  if (keywords.length > MAX_KEYWORDS) throw new BadRequestError(`more than ${MAX_KEYWORDS} keywords`)
  return keywords
}
