// Plays a bought work into the page: the sealed device decrypts into a named pipe that only
// this node reads, and the plaintext goes straight to the browser, never to a file on disk.
import { execFile } from 'node:child_process'
import { constants, createReadStream } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { BadRequestError } from '../../errors.ts'
import { PAGE_HEADERS } from './assets.ts'
import type { ServerResponse } from 'node:http'

const MEDIA_TYPE = /^(audio|video)\/[a-z0-9][a-z0-9.+-]{0,60}$/

/** Decrypts `content` to the path given, resolving when the device is done */
export type PlayInto = (content: string, output: string, signal: AbortSignal) => Promise<unknown>

export function mediaType (value: string | null): string {
  if (value == null) return 'application/octet-stream'
  if (!MEDIA_TYPE.test(value)) throw new BadRequestError('type must be an audio/… or video/… media type')
  return value
}

export async function streamMedia (content: string, type: string, res: ServerResponse, play: PlayInto, signal: AbortSignal): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyfair-media-'))
  const pipe = join(dir, 'plaintext')
  try {
    await promisify(execFile)('mkfifo', ['-m', '600', pipe])
    const reader = createReadStream(pipe)
    const playing = play(content, pipe, signal)
    const failed = playing.then(() => undefined, (err: unknown) => err ?? new Error('play failed'))
    const readable = once(reader, 'readable').then(() => undefined)
    const err = await Promise.race([readable, failed.then(async e => e ?? readable)]).catch((e: unknown) => e)
    if (err != null) {
      // neither end may stay blocked opening the pipe: the device's play must settle
      await openAndClose(pipe, constants.O_WRONLY | constants.O_NONBLOCK)
      reader.destroy()
      await openAndClose(pipe, constants.O_RDONLY | constants.O_NONBLOCK)
      await playing.catch(() => {})
      throw err
    }
    res.writeHead(200, { ...PAGE_HEADERS, 'content-type': type, 'cache-control': 'no-store' })
    // a failure half way cuts the answer short: the player sees an incomplete stream
    void failed.then(e => { if (e != null) res.destroy() })
    await pipeline(reader, res).catch(() => {})
    await playing.catch(() => {})
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Opening the other end releases whoever waits to open this one (fails harmlessly when nobody does) */
async function openAndClose (pipe: string, flags: number): Promise<void> {
  try {
    await (await open(pipe, flags)).close()
  } catch {}
}
