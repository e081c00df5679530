// `keyfair trust|publish|search|buy|play|library|renew|…`: the marketplace, through the running node.
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Command } from 'commander'
import { byteBar } from './cli-progress-bar.ts'
import { BadRequestError } from './errors.ts'
import { formatBytes, formatMoney, parseMoney } from './format.ts'
import { DeclinedError, askYes, canAsk } from './cli-confirm.ts'
import { parseOfferRef } from './buyer/offer-ref.ts'
import { parseInflightBytes } from './config.ts'
import { print } from './cli-output.ts'
import { call, collect, formatDuration, integerFlag, parseDuration, stream } from './cli-call.ts'
import type { GlobalOptions } from './cli-output.ts'

/** `keyfair publish|search|buy|play|library|confirm|dispute|…`: the marketplace, through the running node */
export function addMarketCommands (program: Command): void {
  program.command('trust')
    .description('trust an agency (for a seller: to check buyers\' devices and escrows); buyers and escrows trust the agency they enroll with')
    .requiredOption('--agency <multiaddr>', "the agency's multiaddr ending in /p2p/<peer id>")
    .action(async (opts, command: Command) => {
      const r = await call(command, 'trust', { agency: opts.agency })
      print(command.optsWithGlobals(), r, () => `trusting agency ${r.agency}\nroot fingerprint ${r.root}`)
    })

  program.command('publish <file>')
    .description('encrypt a work, split its key over t-of-n escrows, sign the offer and announce it')
    .requiredOption('--title <title>', 'title (its words are searchable)')
    .option('--tags <tags>', 'comma-separated tags (searchable)', '')
    .requiredOption('--price <amount>', 'price paid to each of the t escrows: minor units (1250), or major units of --currency (12.50, 12.50 EUR)')
    .option('--currency <code>', 'currency of the price (ISO 4217 code)', 'EUR')
    .option('--escrows <t-of-n>', 'threshold and number of escrows, e.g. 3-of-5', '1-of-1')
    .option('--escrow <address>', 'an escrow to use, by peer id or multiaddr (repeatable; the rest are picked from the DHT)', collect)
    .option('--valid-days <n>', 'how long the offer stands', '365')
    .option('--open', 'also sell with this seller offline: the offer carries the key\'s shares, so t escrows together could learn it (needs t ≥ 2)')
    .option('--licence-ttl <duration>', 'how long a licence plays offline before the device renews it online: 12h, 30d', '30d')
    .action(async (file: string, opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const match = /^(\d+)-of-(\d+)$/.exec(opts.escrows)
      if (match == null) throw new BadRequestError(`--escrows '${opts.escrows}' is not t-of-n (e.g. 3-of-5)`)
      const bar = byteBar('publishing', options)
      try {
        const r = await stream(command, 'publish', {
          file: resolvePath(file),
          title: opts.title,
          tags: String(opts.tags).split(',').map((x: string) => x.trim()).filter((x: string) => x !== ''),
          price: parseMoney(opts.price, opts.currency),
          currency: opts.currency,
          t: Number(match[1]),
          n: Number(match[2]),
          escrows: opts.escrow ?? [],
          validDays: integerFlag(opts.validDays, '--valid-days'),
          open: opts.open === true,
          licenceTtlMs: parseDuration(opts.licenceTtl)
        }, event => {
          if (event.phase === 'escrows') bar.note(`escrows ${event.escrows.length} checked`)
          else if (event.phase === 'encrypt') bar.update(event.bytes, event.total, 'encrypting')
          else bar.note('announcing')
        })
        bar.stop()
        print(options, r, () => [
          `published '${r.title}' (${formatBytes(r.size)})`,
          `content ${r.content}`,
          `offer   ${r.offer}`,
          `price   ${formatMoney(r.price, r.currency)} to each of ${r.t} of ${r.escrows.length} escrows`,
          r.open
            ? `open offer: sold with this seller offline too; ${r.t} escrows together could learn its key`
            : 'device-bound: each buyer gets a licence from this seller (online); no escrows learn the key',
          `licences play offline for ${formatDuration(r.licenceTtlMs)}, then renew online`,
          r.announced ? 'announced in the DHT' : 'not announced yet (no DHT peers): it will be, once the node has peers'
        ].join('\n'))
      } finally {
        bar.stop()
      }
    })

  program.command('search <words...>')
    .description('find offers by keyword in the DHT, with price, escrows and number of providers')
    .option('--timeout <ms>', 'time budget per word', '10000')
    .action(async (words: string[], opts, command: Command) => {
      const r = await call(command, 'search', { words, timeoutMs: integerFlag(opts.timeout, '--timeout') }, 120_000)
      print(command.optsWithGlobals(), r, () => r.offers.length === 0
        ? 'no offers found'
        : r.offers.map(o => `${o.offer}\n  '${o.title}' [${o.tags.join(', ')}]  ${formatMoney(o.price, o.currency)} × ${o.t} of ${o.escrows} escrows  ${o.open ? 'open' : 'device-bound'}  ${o.providers} provider(s)  seller ${o.seller}`).join('\n'))
    })

  program.command('buy <offer>')
    .description('download from any providers, pay t escrows through the sealed device, and write the plaintext; <offer> is an offer id or a content id, found through the DHT when no search here listed it')
    .option('--out <file>', 'write the plaintext here')
    .option('--seed', 'serve the ciphertext to other buyers afterwards')
    .option('--from <peers>', 'download only from these providers (comma-separated peer ids)')
    .option('--inflight-bytes <n>', 'bytes of chunks held in flight for this buy (default: the buyer.inflightBytes setting, 16 MiB)')
    .option('--yes', 'buy at the price shown without asking (stdin not a terminal, or --json: never asked)')
    .action(async (offer: string, opts, command: Command) => {
      parseOfferRef(offer) // a malformed id is a usage error, running node or not
      const inflightBytes = opts.inflightBytes != null ? parseInflightBytes(opts.inflightBytes, '--inflight-bytes') : undefined
      const options = command.optsWithGlobals<GlobalOptions>()
      if (canAsk({ yes: opts.yes === true, json: options.json === true })) {
        const q = await call(command, 'quote', { offer }, 60_000)
        const question = `buy '${q.title}' for ${formatMoney(q.total, q.currency)} (${formatMoney(q.price, q.currency)} to each of ${q.t} escrows)?`
        if (!(await askYes(question))) throw new DeclinedError('not bought: nothing was reserved or paid')
      }
      const bar = byteBar('downloading', options)
      // payment and play run during the download: the bar counts bytes, the note the rest
      const state = { bytes: 0, total: 0, providers: 0, escrows: '', played: 0 }
      const show = (): void => {
        const notes = [`${state.providers} provider(s)`, state.escrows, state.played > 0 ? `${formatBytes(state.played)} played` : '']
        bar.update(state.bytes, state.total, notes.filter(n => n !== '').join(', '))
      }
      try {
        const r = await stream(command, 'buy', { offer, output: opts.out != null ? resolvePath(opts.out) : undefined, seed: opts.seed === true, from: opts.from != null ? String(opts.from).split(',').map((p: string) => p.trim()).filter(Boolean) : undefined, inflightBytes }, event => {
          if (event.phase === 'download') Object.assign(state, { bytes: event.bytes, total: event.total, providers: event.providers })
          else if (event.phase === 'escrow') state.escrows = `escrows ${event.state === 'reserved' ? 'reserved' : 'paid'} ${event.have}/${event.need}`
          else if (event.phase === 'play') state.played = event.bytes
          else return
          show()
        })
        bar.stop()
        print(options, r, () => [
          `bought ${r.content} (purchase ${r.purchase}, ${r.bound ? 'device-bound licence' : 'open offer'})`,
          `paid ${formatMoney(r.paid, r.currency)} in total: ${formatMoney(r.price, r.currency)} to each escrow that accepted`,
          ...r.escrows.map(e => `  escrow ${e.j} ${e.peer}: ${e.outcome}${e.outcome === 'accepted' ? `, paid ${formatMoney(r.price, r.currency)}` : ''}`),
          // where the ciphertext came from, when more than one provider served it
          ...(r.sources.length > 1 ? r.sources.map(s => `  from ${s.provider}: ${formatBytes(s.bytes)}${s.rested ? ' (rested: no faster with it)' : ''}`) : []),
          ...r.dropped.map(d => `  dropped provider ${d.provider}: ${d.reason}`),
          r.output != null ? `wrote ${formatBytes(r.bytes ?? 0)} to ${r.output}` : `play it with: keyfair play ${r.content} --out <file>`,
          r.seeding ? 'seeding the ciphertext' : '',
          `confirm with: keyfair confirm ${r.purchase}`
        ].filter(l => l !== '').join('\n'))
      } finally {
        bar.stop()
      }
    })

  program.command('play <content>')
    .description('decrypt a purchased work inside the sealed device to a file, or - for stdout (works offline)')
    .requiredOption('--out <file>', 'where the plaintext goes (- for stdout)')
    .action(async (content: string, opts, command: Command) => {
      if (opts.out !== '-') {
        const bar = byteBar('playing', command.optsWithGlobals<GlobalOptions>())
        try {
          const r = await stream(command, 'play', { content, output: resolvePath(opts.out) }, event => {
            if (event.phase === 'play' && event.total != null) bar.update(event.bytes, event.total)
          })
          bar.stop()
          print(command.optsWithGlobals(), r, () => `wrote ${formatBytes(r.bytes)} to ${resolvePath(opts.out)}`)
        } finally {
          bar.stop()
        }
        return
      }
      // the device writes only to files: a private temporary one, streamed out and removed
      const dir = await mkdtemp(join(tmpdir(), 'keyfair-play-'))
      try {
        await stream(command, 'play', { content, output: join(dir, 'plaintext') }, () => {})
        await pipeline(createReadStream(join(dir, 'plaintext')), process.stdout)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })

  program.command('library')
    .description('licences sealed in this node\'s device')
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'library')
      print(command.optsWithGlobals(), r, () => r.licences.length === 0
        ? 'no licences yet'
        : r.licences.map(l => [
          `${l.content}  '${l.title}'  bought ${new Date(l.purchasedAt).toISOString()}  purchase ${l.purchase}`,
          `  ${l.playUntil < Date.now() ? 'EXPIRED: played offline until' : 'plays offline until'} ${new Date(l.playUntil).toISOString()} (lifetime ${formatDuration(l.licenceTtl)}${l.renewedAt != null ? `, renewed ${new Date(l.renewedAt).toISOString()}` : ''})`
        ].join('\n')).join('\n'))
    })

  program.command('renew <content>')
    .description('extend a licence\'s offline lifetime: an escrow of its offer states that this device is not revoked')
    .action(async (content: string, _opts, command: Command) => {
      const r = await call(command, 'renew', { content }, 120_000)
      print(command.optsWithGlobals(), r, () => [
        `renewed ${r.content} '${r.title}' until ${new Date(r.playUntil).toISOString()} (escrow ${r.escrow})`,
        ...r.unavailable.map(u => `  escrow ${u.escrow} did not answer: ${u.reason}`)
      ].join('\n'))
    })

  program.command('purchases')
    .description('purchases on this node\'s device and their state')
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'purchases')
      print(command.optsWithGlobals(), r, () => r.purchases.length === 0
        ? 'no purchases'
        : r.purchases.map(p => `${p.purchase}  ${p.state.padEnd(9)} ${p.content}  escrows ${p.accepted.join(',')}${p.faulty.length > 0 ? `  faulty ${p.faulty.join(',')}` : ''}`).join('\n'))
    })

  for (const [name, description] of [['confirm', 'release the payment to the seller: the device\'s receipt to every escrow paid'], ['dispute', 'claim a refund: the device opens the part of the key at fault (or, with --chunk, what decrypts that chunk) so the escrows can check the seller']] as const) {
    const cmd = program.command(`${name} <purchase>`).description(description)
    if (name === 'dispute') cmd.option('--chunk <n>', 'the chunk that fails to play, when the key itself matched (the device refuses a chunk that decrypts)')
    cmd.action(async (purchase: string, opts, command: Command) => {
      const r = await call(command, name, { purchase, chunk: opts.chunk != null ? integerFlag(opts.chunk, '--chunk') : undefined }, 120_000)
      print(command.optsWithGlobals(), r, () => r.escrows.map(e => `escrow ${e.j} ${e.peer}: ${e.error ?? `${formatMoney(r.price, r.currency)} ${e.state ?? ''}${e.refused === true ? ' (dispute refused)' : ''} ${e.reason ?? ''}`}`).join('\n'))
      if (r.escrows.some(e => e.error != null)) process.exitCode = 1
    })
  }

  program.command('export <content> <dir>')
    .description('write a content\'s ciphertext, manifest and signed offers to a new directory (portable media)')
    .action(async (content: string, dir: string, _opts, command: Command) => {
      const r = await call(command, 'export', { content, path: resolvePath(dir) }, 600_000)
      print(command.optsWithGlobals(), r, () => `exported ${r.content} (${formatBytes(r.bytes)}, ${r.offers} offer(s)) to ${r.path}`)
    })

  program.command('import <dir>')
    .description('take a content from portable media: every chunk and offer is checked; then buy it without downloading')
    .option('--seed', 'serve it to other buyers too')
    .action(async (dir: string, opts, command: Command) => {
      const r = await call(command, 'import', { path: resolvePath(dir), seed: opts.seed === true }, 600_000)
      print(command.optsWithGlobals(), r, () => [`imported ${r.content}`, ...r.offers.map(o => `  offer ${o} (keyfair buy ${o})`)].join('\n'))
    })

  program.command('remove <content>')
    .description('delete a content\'s ciphertext from this node (it stops serving it; purchased licences stay in the device)')
    .action(async (content: string, _opts, command: Command) => {
      const r = await call(command, 'remove', { content })
      print(command.optsWithGlobals(), r, () => `removed ${r.content}`)
    })

  program.command('contents')
    .description('ciphertext held by this node')
    .action(async (_opts, command: Command) => {
      const r = await call(command, 'contents')
      print(command.optsWithGlobals(), r, () => r.contents.length === 0 ? 'none' : r.contents.map(c => `${c.content}  ${formatBytes(c.size)}  ${c.complete ? 'complete' : 'partial'}  ${c.offers} offer(s)`).join('\n'))
    })
}
