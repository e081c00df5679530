// What the content store refuses: ciphertext that does not match its manifest, ranges it does
// not hold, and writes that did not land.
import { KeyfairError } from '../../protocols/errors.ts'

/** Ciphertext that does not match its manifest: a chunk's hash, or the file's length */
export class BadChunkError extends KeyfairError {
  static readonly code = 'ERR_BAD_CHUNK'
  constructor (message = 'the ciphertext does not match its manifest') {
    super(message, BadChunkError.code)
  }

  static chunk (cid: string, index: number): BadChunkError {
    return new BadChunkError(`chunk ${index} of ${cid} does not match its manifest`)
  }
}

/** A manifest whose CID is not the one asked for */
export class WrongManifestError extends KeyfairError {
  static readonly code = 'ERR_WRONG_MANIFEST'
  constructor (cid: string, expected: string) {
    super(`the manifest is that of ${cid}, not ${expected}`, WrongManifestError.code)
  }
}

/** A chunk the file system took fewer bytes of than were given */
export class ShortWriteError extends KeyfairError {
  static readonly code = 'ERR_SHORT_WRITE'
  constructor (cid: string, index: number) {
    super(`chunk ${index} of ${cid} was written short`, ShortWriteError.code)
  }
}

/** Chunks outside the content, or a range that is not one */
export class BadRangeError extends KeyfairError {
  static readonly code = 'ERR_BAD_RANGE'
  constructor (message = 'no such chunks in this content') {
    super(message, BadRangeError.code)
  }
}

/** A content marked complete while some of its chunks are still missing */
export class IncompleteContentError extends KeyfairError {
  static readonly code = 'ERR_INCOMPLETE'
  constructor (cid: string, missing: number) {
    super(`${missing} chunks of ${cid} are still missing`, IncompleteContentError.code)
  }
}
