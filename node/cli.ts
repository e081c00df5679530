import { readFile, writeFile } from 'node:fs/promises'
import { createReadStream, existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { byteBar } from './cli-progress-bar.ts'
import { Command, CommanderError, Option } from 'commander'
import { KeyfairError } from '../protocols/errors.ts'
import { encodePem } from '../device/pki/index.ts'
import { initAgency, REVOCATION_REASONS } from './agency/agency.ts'
import { BadConfigError, BadRequestError, RepoExistsError } from './errors.ts'
import { needsSealedKeys, parseBootstrapAddress, parseListenAddress, parsePort, parseRoles, roleNodeFlags, ROLE_NAMES } from './config.ts'
import { ControlClient } from './control/client.ts'
import { formatBytes, formatMoney, parseMoney } from './format.ts'
import { runDaemon } from './daemon.ts'
import { addDevnetCommand } from './devnet/command.ts'
import { VERSION } from './keyfair-node.ts'
import { addConfigCommands } from './cli-config.ts'
import { addLogCommands } from './cli-log.ts'
import { addCompletionCommand } from './cli-completion.ts'
import { reportError, usageExit } from './cli-errors.ts'
import { LOG_LEVELS, logFilePath, parseLogLevel } from './log/levels.ts'
import { appendLogLine } from './log/rotating-file.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { EscrowFiles, DEFAULT_ESCROW_SETTINGS, validateLedgerUrl } from './escrow/state.ts'
import { openLedger } from './escrow/open-ledger.ts'
import { moveLedgerToPostgres } from './escrow/move-ledger.ts'
import { logger } from '@libp2p/logger'
import type { EscrowSettings } from './escrow/state.ts'
import { NodeKeyStore, checkRepoPassphrase, kdfFromEnv } from './keys/keystore.ts'
import { PASSPHRASE_ENV, passphraseGiven, readPassphrase } from './passphrase.ts'
import { print, repoOf } from './cli-output.ts'
import type { GlobalOptions } from './cli-output.ts'
import type { Repo } from './repo.ts'
import type { NodeConfig } from './config.ts'
import type { UnlockedKeys } from './keys/keystore.ts'
import type { AnnounceResult, Provider } from './discovery/discovery.ts'
import type { NodeStatus, PeerInfo } from './keyfair-node.ts'
import type { DeviceCertificates, DeviceStatus } from '../device/interface.ts'
import type { AuditReport, Posting } from './escrow/ledger.ts'
import type { AccountAnswer } from '../protocols/escrow/account.ts'
import type { BuyResult, OfferListing, SettlementResult } from './buyer/buyer.ts'
import type { BuyProgress, PlayProgress, PublishProgress } from './control/progress.ts'
import { parseOfferRef } from './buyer/offer-ref.ts'
import type { RenewalResult } from './buyer/renewal.ts'
import type { ContentSummary } from './content/store.ts'
import type { Published } from './seller/seller.ts'
import type { LicenceInfo, PurchaseInfo } from '../device/interface.ts'

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/**
 * The same process (same pid) over again with V8 flags that only count at start-up,
 * unless it already has them. A supervisor talking to the node over an IPC channel
 * passes them itself: the channel would not survive the exec.
 */
function restartWithFlags (flags: string[]): void {
  if (typeof process.execve !== 'function' || process.channel != null || flags.every(flag => process.execArgv.includes(flag))) return
  const names = new Set(flags.map(flag => flag.split('=')[0]))
  // a different value of the same flag would win over the new one, and this would repeat
  const kept = process.execArgv.filter(arg => !names.has(arg.split('=')[0]))
  process.execve(process.execPath, [process.execPath, ...flags, ...kept, process.argv[1]!, ...process.argv.slice(2)], process.env)
}

const passphraseFileOption = (what: string): Option => new Option('--passphrase-file <file>', `the repo's passphrase, from a file of mode 0600 (else $${PASSPHRASE_ENV}, else a prompt): ${what}`)

/** The repo's key store for an offline command: unlocked, or created (asking twice on a prompt) */
async function unlockOrCreateKeys (repo: Repo, file: string | undefined): Promise<UnlockedKeys> {
  const store = new NodeKeyStore(repo.keysDir)
  if (await store.exists()) return store.unlock(await readPassphrase({ file }))
  const kdf = kdfFromEnv()
  return store.create(checkRepoPassphrase(await readPassphrase({ file, confirm: true })), { kdf })
}

/** Commands that talk to the running node share this: resolve repo, call the endpoint. */
async function call<T> (command: Command, endpoint: string, body: unknown = {}, timeoutMs?: number): Promise<T> {
  const client = new ControlClient(repoOf(command.optsWithGlobals()))
  return client.call<T>(endpoint, body, { timeoutMs })
}

export function buildProgram (): Command {
  const program = new Command('keyfair')
    .description('peer-to-peer content marketplace with blind-key escrow')
    .version(VERSION)
    .option('--repo <dir>', 'node repo directory (default: $KEYFAIR_REPO or ~/.keyfair)')
    .option('--json', 'machine-readable output (one JSON document per line)')
    // usage errors are reported by main(), as every other error: one line, or JSON with --json
    .exitOverride(usageExit)
    .configureOutput({
      outputError: () => {},
      // help shown for a usage error would break the one JSON document of --json
      writeErr: str => { if (program.opts().json !== true) process.stderr.write(str) }
    })

  program.command('init')
    .description('create a repo: persistent peer identity, control API token, config')
    .option('--listen <multiaddr>', 'default listen address (repeatable)', collect)
    .option('--bootstrap <multiaddr>', 'default bootstrap peer /ip4/…/tcp/…/p2p/<id> (repeatable)', collect)
    .option('--role <roles>', `default roles, comma-separated (${ROLE_NAMES.join(', ')})`)
    .option('--api-port <port>', 'control API port on 127.0.0.1 (0: any free port)')
    .addOption(new Option('--log-level <level>', 'what <repo>/logs/keyfair.log records').choices(LOG_LEVELS))
    .addOption(passphraseFileOption('seals the key store now (otherwise it is made when a role first needs it)'))
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      const config: Partial<NodeConfig> = {}
      if (opts.listen != null) config.listen = opts.listen.map((a: string) => parseListenAddress(a).toString())
      if (opts.bootstrap != null) config.bootstrap = opts.bootstrap.map((a: string) => parseBootstrapAddress(a).toString())
      if (opts.role != null) config.roles = parseRoles(opts.role)
      if (opts.apiPort != null) config.apiPort = parsePort(opts.apiPort, '--api-port')
      if (opts.logLevel != null) config.logLevel = parseLogLevel(opts.logLevel, '--log-level')
      if (await repo.exists()) throw new RepoExistsError(repo.path)
      const kdf = kdfFromEnv()
      // asked before the repo is made, so a mistyped passphrase leaves nothing behind
      const passphrase = passphraseGiven(opts.passphraseFile) || process.stdin.isTTY === true
        ? checkRepoPassphrase(await readPassphrase({ file: opts.passphraseFile, confirm: true }))
        : undefined
      const { peerId } = await repo.init(config)
      if (passphrase != null) (await new NodeKeyStore(repo.keysDir).create(passphrase, { kdf })).lock()
      print(options, { repo: repo.path, peerId, keyStore: passphrase != null }, () => [
        `initialised ${repo.path}`,
        `peer id ${peerId}`,
        passphrase != null ? 'key store sealed under the passphrase' : `no key store yet: it is made, under the passphrase, when a role first needs one`
      ].join('\n'))
    })

  program.command('start')
    .description('run the node in the foreground until Ctrl-C; each flag given overrides the repo\'s config for this run only (keyfair config set keeps a setting)')
    .option('--role <roles>', `roles to run, comma-separated (${ROLE_NAMES.join(', ')})`)
    .option('--listen <multiaddr>', 'listen address, e.g. /ip4/127.0.0.1/tcp/4001 (repeatable)', collect)
    .option('--bootstrap <multiaddr>', 'peer to join through, /ip4/…/tcp/…/p2p/<id> (repeatable)', collect)
    .option('--api-port <port>', 'control API port on 127.0.0.1 (0: any free port)')
    .addOption(new Option('--log-level <level>', 'what <repo>/logs/keyfair.log records (default info)').choices(LOG_LEVELS))
    .option('--init', 'initialise the repo first if it does not exist, saving these flags in its config for later starts')
    .addOption(passphraseFileOption('unlocks the key store (agency, escrow, seller) and the sealed device (buyer)'))
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      // validate flags before touching the repo, so a typo never half-starts a node
      const roles = opts.role != null ? parseRoles(opts.role) : undefined
      const listen = opts.listen?.map((a: string) => parseListenAddress(a).toString())
      const bootstrap = opts.bootstrap?.map((a: string) => parseBootstrapAddress(a).toString())
      const apiPort = opts.apiPort != null ? parsePort(opts.apiPort, '--api-port') : undefined
      const logLevel = opts.logLevel != null ? parseLogLevel(opts.logLevel, '--log-level') : undefined
      // a repo made now keeps the flags, so a plain `keyfair start` later comes up the same
      if (opts.init === true && !(await repo.exists())) await repo.init(definedOnly({ roles, listen, bootstrap, apiPort, logLevel }))
      const config = await repo.readConfig()
      restartWithFlags(roleNodeFlags(roles ?? config.roles))
      // roles with sealed keys cannot run without the passphrase: asked on a terminal, else
      // ERR_PASSPHRASE_REQUIRED; a buyer alone is never asked (its device unlocks later)
      const passphrase = needsSealedKeys(roles ?? config.roles)
        ? await readPassphrase({ file: opts.passphraseFile, confirm: !(await new NodeKeyStore(repo.keysDir).exists()) })
        : passphraseGiven(opts.passphraseFile) ? await readPassphrase({ file: opts.passphraseFile }) : undefined
      await runDaemon({
        repo,
        passphrase,
        keyStoreKdf: kdfFromEnv(),
        roles: roles ?? config.roles,
        listen: listen ?? config.listen,
        bootstrap: bootstrap ?? config.bootstrap,
        apiPort: apiPort ?? config.apiPort,
        logLevel: logLevel ?? config.logLevel,
        onReady: info => {
          print(options, { event: 'ready', ...info }, () => [
            ...info.sealedKeyFiles.map(file => `sealed ${file} into the key store and removed the plaintext`),
            `keyfair node ${info.peerId} running (pid ${info.pid})`,
            `roles:     ${info.roles.join(', ') || '(none)'}`,
            ...info.addresses.map(a => `listening: ${a}`),
            `control:   ${info.api}`,
            'press Ctrl-C to stop'
          ].join('\n'))
        }
      })
      print(options, { event: 'stopped' }, () => 'stopped')
    })

  program.command('id')
    .description('peer id and addresses of the node (the peer id alone, from the repo, when none runs)')
    .action(async (_opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      const result = await repo.running()
        ? { ...(await call<{ peerId: string, addresses: string[] }>(command, 'id')), running: true }
        : { peerId: peerIdFromPrivateKey(await repo.loadIdentity()).toString(), addresses: [], running: false }
      print(options, result, () => [result.peerId, ...result.addresses.map(a => `  ${a}`), ...(result.running ? [] : ['(no node running: no addresses)'])].join('\n'))
    })

  program.command('peers')
    .description('connected peers')
    .action(async (_opts, command: Command) => {
      const result = await call<{ peers: PeerInfo[] }>(command, 'peers')
      print(command.optsWithGlobals(), result, () => result.peers.length === 0
        ? 'no connected peers'
        : result.peers.map(p => `${p.peerId}  ${p.addresses.join(' ')}  ${p.direction}`).join('\n'))
    })

  const ESCROW_MODE_NOTES = {
    active: '',
    standby: ' (another process of this escrow answers)',
    suspended: ' (lost its lock on the ledger database: refusing requests until it holds it again)'
  }
  program.command('status')
    .description('roles, protocols, connections and DHT state of the running node')
    .action(async (_opts, command: Command) => {
      const s = await call<NodeStatus>(command, 'status')
      print(command.optsWithGlobals(), s, () => [
        `peer id:       ${s.peerId}`,
        `roles:         ${s.roles.join(', ') || '(none)'}`,
        ...(s.escrow != null ? [`escrow:        ${s.escrow.mode}${ESCROW_MODE_NOTES[s.escrow.mode]}`] : []),
        `connections:   ${s.connections}`,
        `routing table: ${s.routingTableSize} peers (dht ${s.dhtMode})`,
        `announcements: ${s.announcements}`,
        `uptime:        ${Math.round(s.uptimeMs / 1000)} s`,
        ...s.addresses.map(a => `listening:     ${a}`),
        `protocols:     ${s.protocols.join(' ')}`
      ].join('\n'))
    })

  program.command('announce')
    .description('provide a content id and its keywords in the DHT (kept and re-provided after restarts)')
    .argument('<content-id>', 'CID of the content')
    .argument('<keywords...>', 'words or phrases; each word becomes a keyword')
    .action(async (contentId: string, keywords: string[], _opts, command: Command) => {
      const result = await call<AnnounceResult>(command, 'announce', { contentId, keywords }, 120_000)
      const ok = result.provided.filter(p => p.ok).length
      print(command.optsWithGlobals(), result, () => [
        `announced ${result.contentId} under ${result.keywords.join(', ')}`,
        `provided ${ok}/${result.provided.length} keys to the DHT`,
        ...result.provided.filter(p => !p.ok).map(p => `  not yet: ${p.keyword ?? p.cid} (${p.error ?? 'failed'}); will retry`)
      ].join('\n'))
    })

  program.command('providers')
    .description('every provider of a CID (a content id or any key), in one bare DHT query')
    .argument('<cid>')
    .option('--timeout <ms>', 'time budget in milliseconds', '10000')
    .action(async (cid: string, opts, command: Command) => {
      const timeoutMs = integerFlag(opts.timeout, '--timeout')
      const result = await call<{ content: string, providers: Provider[] }>(command, 'providers', { content: cid, timeoutMs }, timeoutMs + 10_000)
      print(command.optsWithGlobals(), result, () => [
        `${result.providers.length} provider(s) of ${cid}`,
        ...result.providers.map(p => `${p.peerId}  ${p.multiaddrs.join(' ')}`)
      ].join('\n'))
    })

  program.command('find')
    .description('find providers of a keyword in the DHT')
    .argument('<keyword>')
    .addOption(new Option('--limit <n>', 'stop after this many providers').default('20'))
    .addOption(new Option('--timeout <ms>', 'time budget in milliseconds').default('10000'))
    .action(async (keyword: string, opts, command: Command) => {
      const limit = Number(opts.limit)
      const timeoutMs = Number(opts.timeout)
      const result = await call<{ keyword: string, cid: string, providers: Provider[] }>(command, 'find', { keyword, limit, timeoutMs }, (Number.isFinite(timeoutMs) ? timeoutMs : 0) + 10_000)
      print(command.optsWithGlobals(), result, () => [
        `${result.providers.length} provider(s) of '${keyword}' (${result.cid})`,
        ...result.providers.map(p => `${p.peerId}  ${p.multiaddrs.join(' ')}`)
      ].join('\n'))
    })

  program.command('stop')
    .description('stop the running node')
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'stop')
      print(command.optsWithGlobals(), result, () => 'stopping')
    })

  program.command('balance')
    .description("this node's account at an escrow: balance, holds, recent postings")
    .requiredOption('--escrow <address>', "the escrow's peer id, or its multiaddr ending in /p2p/<peer id>")
    .action(async (opts, command: Command) => {
      const a = await call<AccountAnswer>(command, 'balance', { escrow: opts.escrow }, 30_000)
      print(command.optsWithGlobals(), a, () => [
        `${formatMoney(a.balance, a.currency)} for ${a.account}`,
        ...a.holds.filter(h => h.state === 'open').map(h => `  hold ${h.hold}: ${formatMoney(h.amount, a.currency)} for purchase ${h.purchase}, until ${new Date(h.expiresAt).toISOString()}`)
      ].join('\n'))
    })

  addConfigCommands(program)
  addLogCommands(program)
  addAgencyCommands(program)
  addDeviceCommands(program)
  addEscrowCommands(program)
  addMarketCommands(program)
  addDevnetCommand(program)
  addCompletionCommand(program)
  return program
}

async function stream<T> (command: Command, endpoint: string, body: unknown, onProgress: (event: any) => void): Promise<T> {
  const client = new ControlClient(repoOf(command.optsWithGlobals()))
  return client.stream<T>(endpoint, body, onProgress, { timeoutMs: 24 * 3600_000 })
}

/** `keyfair publish|search|buy|play|library|confirm|dispute|…`: the marketplace, through the running node */
function addMarketCommands (program: Command): void {
  program.command('trust')
    .description('trust an agency (for a seller: to check buyers\' devices and escrows); buyers and escrows trust the agency they enroll with')
    .requiredOption('--agency <multiaddr>', "the agency's multiaddr ending in /p2p/<peer id>")
    .action(async (opts, command: Command) => {
      const r = await call<{ agency: string, root: string }>(command, 'trust', { agency: opts.agency })
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
        const r = await stream<Published>(command, 'publish', {
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
        }, (event: PublishProgress) => {
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
      const r = await call<{ offers: OfferListing[] }>(command, 'search', { words, timeoutMs: integerFlag(opts.timeout, '--timeout') }, 120_000)
      print(command.optsWithGlobals(), r, () => r.offers.length === 0
        ? 'no offers found'
        : r.offers.map(o => `${o.offer}\n  '${o.title}' [${o.tags.join(', ')}]  ${formatMoney(o.price, o.currency)} × ${o.t} of ${o.escrows} escrows  ${o.open ? 'open' : 'device-bound'}  ${o.providers} provider(s)  seller ${o.seller}`).join('\n'))
    })

  program.command('buy <offer>')
    .description('download from any providers, pay t escrows through the sealed device, and write the plaintext; <offer> is an offer id or a content id, found through the DHT when no search here listed it')
    .option('--out <file>', 'write the plaintext here')
    .option('--seed', 'serve the ciphertext to other buyers afterwards')
    .option('--from <peers>', 'download only from these providers (comma-separated peer ids)')
    .action(async (offer: string, opts, command: Command) => {
      parseOfferRef(offer) // a malformed id is a usage error, running node or not
      const options = command.optsWithGlobals<GlobalOptions>()
      const bar = byteBar('downloading', options)
      // payment and play run during the download: the bar counts bytes, the note the rest
      const state = { bytes: 0, total: 0, providers: 0, escrows: '', played: 0 }
      const show = (): void => {
        const notes = [`${state.providers} provider(s)`, state.escrows, state.played > 0 ? `${formatBytes(state.played)} played` : '']
        bar.update(state.bytes, state.total, notes.filter(n => n !== '').join(', '))
      }
      try {
        const r = await stream<BuyResult>(command, 'buy', { offer, output: opts.out != null ? resolvePath(opts.out) : undefined, seed: opts.seed === true, from: opts.from != null ? String(opts.from).split(',').map((p: string) => p.trim()).filter(Boolean) : undefined }, (event: BuyProgress) => {
          if (event.phase === 'download') Object.assign(state, { bytes: event.bytes, total: event.total, providers: event.providers })
          else if (event.phase === 'escrow') state.escrows = `escrows paid ${event.have}/${event.need}`
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
          const r = await stream<{ bytes: number }>(command, 'play', { content, output: resolvePath(opts.out) }, (event: PlayProgress) => {
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
      const r = await call<{ licences: LicenceInfo[] }>(command, 'library')
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
      const r = await call<RenewalResult>(command, 'renew', { content }, 120_000)
      print(command.optsWithGlobals(), r, () => [
        `renewed ${r.content} '${r.title}' until ${new Date(r.playUntil).toISOString()} (escrow ${r.escrow})`,
        ...r.unavailable.map(u => `  escrow ${u.escrow} did not answer: ${u.reason}`)
      ].join('\n'))
    })

  program.command('purchases')
    .description('purchases on this node\'s device and their state')
    .action(async (_opts, command: Command) => {
      const r = await call<{ purchases: PurchaseInfo[] }>(command, 'purchases')
      print(command.optsWithGlobals(), r, () => r.purchases.length === 0
        ? 'no purchases'
        : r.purchases.map(p => `${p.purchase}  ${p.state.padEnd(9)} ${p.content}  escrows ${p.accepted.join(',')}${p.faulty.length > 0 ? `  faulty ${p.faulty.join(',')}` : ''}`).join('\n'))
    })

  for (const [name, description] of [['confirm', 'release the payment to the seller: the device\'s receipt to every escrow paid'], ['dispute', 'claim a refund: the device opens the part of the key at fault (or, with --chunk, what decrypts that chunk) so the escrows can check the seller']] as const) {
    const cmd = program.command(`${name} <purchase>`).description(description)
    if (name === 'dispute') cmd.option('--chunk <n>', 'the chunk that fails to play, when the key itself matched (the device refuses a chunk that decrypts)')
    cmd.action(async (purchase: string, opts, command: Command) => {
      const r = await call<SettlementResult>(command, name, { purchase, chunk: opts.chunk != null ? integerFlag(opts.chunk, '--chunk') : undefined }, 120_000)
      print(command.optsWithGlobals(), r, () => r.escrows.map(e => `escrow ${e.j} ${e.peer}: ${e.error ?? `${formatMoney(r.price, r.currency)} ${e.state ?? ''}${e.refused === true ? ' (dispute refused)' : ''} ${e.reason ?? ''}`}`).join('\n'))
      if (r.escrows.some(e => e.error != null)) process.exitCode = 1
    })
  }

  program.command('export <content> <dir>')
    .description('write a content\'s ciphertext, manifest and signed offers to a new directory (portable media)')
    .action(async (content: string, dir: string, _opts, command: Command) => {
      const r = await call<{ content: string, path: string, offers: number, bytes: number }>(command, 'export', { content, path: resolvePath(dir) }, 600_000)
      print(command.optsWithGlobals(), r, () => `exported ${r.content} (${formatBytes(r.bytes)}, ${r.offers} offer(s)) to ${r.path}`)
    })

  program.command('import <dir>')
    .description('take a content from portable media: every chunk and offer is checked; then buy it without downloading')
    .option('--seed', 'serve it to other buyers too')
    .action(async (dir: string, opts, command: Command) => {
      const r = await call<{ content: string, offers: string[], seeding: boolean }>(command, 'import', { path: resolvePath(dir), seed: opts.seed === true }, 600_000)
      print(command.optsWithGlobals(), r, () => [`imported ${r.content}`, ...r.offers.map(o => `  offer ${o} (keyfair buy ${o})`)].join('\n'))
    })

  program.command('remove <content>')
    .description('delete a content\'s ciphertext from this node (it stops serving it; purchased licences stay in the device)')
    .action(async (content: string, _opts, command: Command) => {
      const r = await call<{ content: string }>(command, 'remove', { content })
      print(command.optsWithGlobals(), r, () => `removed ${r.content}`)
    })

  program.command('contents')
    .description('ciphertext held by this node')
    .action(async (_opts, command: Command) => {
      const r = await call<{ contents: ContentSummary[] }>(command, 'contents')
      print(command.optsWithGlobals(), r, () => r.contents.length === 0 ? 'none' : r.contents.map(c => `${c.content}  ${formatBytes(c.size)}  ${c.complete ? 'complete' : 'partial'}  ${c.offers} offer(s)`).join('\n'))
    })
}

/** Opens the PostgreSQL ledger the settings name (migrating its schema) and closes it again */
async function checkLedger (files: EscrowFiles, settings: Partial<EscrowSettings>): Promise<void> {
  const ledger = await openLedger(files, { ...DEFAULT_ESCROW_SETTINGS, ...settings, ledger: validateLedgerUrl(settings.ledger) }, logger('keyfair:escrow:ledger'))
  await ledger.close()
}

/** `keyfair escrow …`: the operator's commands; `init` is offline, the rest ask the node running `--role escrow` */
function addEscrowCommands (program: Command): void {
  const escrow = program.command('escrow')
    .description('the escrow operator: key, enrollment, deposits and withdrawals, ledger, audit')

  escrow.command('init')
    .description('create the escrow key (sealed in <repo>/keys) and settings in <repo>/escrow (offline; otherwise made at first start)')
    .option('--bits <n>', 'RSA key size (2048 for tests only)', '3072')
    .option('--currency <code>', 'the currency this escrow settles', 'EUR')
    .option('--hold-ttl <duration>', 'how long a hold waits for a receipt before it goes to the seller', '7d')
    .option('--clock-window <duration>', 'how far a request\'s timestamp may be from this clock', '5m')
    .option('--unblind-workers <n>', "threads for the private-key operations: 'auto' (one per core) or 0..64 (0: on the main thread)", 'auto')
    .option('--ledger <url>', 'keep the ledger in PostgreSQL: postgres://user@host:port/database (default: SQLite in the repo)')
    .option('--ledger-password-file <file>', 'the PostgreSQL password, from a file of mode 0600 (else $PGPASSWORD)')
    .addOption(new Option('--faulty-answers', 'answer wrongly on purpose (adversarial testing of buyers\' fraud proofs only)').hideHelp())
    .addOption(passphraseFileOption('the escrow key is sealed in the key store under it'))
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      await repo.assertInitialised()
      const files = new EscrowFiles(repo.path)
      const bits = integerFlag(opts.bits, '--bits')
      const settings: Partial<EscrowSettings> = { currency: opts.currency, holdTtlMs: parseDuration(opts.holdTtl), clockWindowMs: parseDuration(opts.clockWindow), faultyAnswers: opts.faultyAnswers === true, unblindWorkers: opts.unblindWorkers === 'auto' ? 'auto' as const : integerFlag(opts.unblindWorkers, '--unblind-workers') }
      if (opts.ledger != null) settings.ledger = opts.ledger
      if (opts.ledgerPasswordFile != null) settings.ledgerPasswordFile = resolvePath(opts.ledgerPasswordFile)
      // the database is reached (and its schema made) before any key is: a wrong URL or password fails here
      if (settings.ledger != null) await checkLedger(files, settings)
      const keys = await unlockOrCreateKeys(repo, opts.passphraseFile)
      try {
        await files.init({ keys, bits, settings })
      } finally {
        keys.lock()
      }
      const result = { dir: files.dir, ...(await files.settings()) }
      print(options, result, () => `escrow key created in ${files.dir}\nstart it with: keyfair --repo ${repo.path} start --role escrow`)
    })

  escrow.command('migrate')
    .description('move the SQLite ledger (open and ended holds, every entry) into an empty PostgreSQL database, with the node stopped; the escrow then uses it')
    .requiredOption('--to <url>', 'postgres://user@host:port/database, empty')
    .option('--ledger-password-file <file>', 'the PostgreSQL password, from a file of mode 0600 (else $PGPASSWORD)')
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      await repo.assertInitialised()
      // the node must not write to the SQLite ledger while it moves
      const unlock = await repo.lock()
      try {
        const passwordFile = opts.ledgerPasswordFile != null ? resolvePath(opts.ledgerPasswordFile) : undefined
        const r = await moveLedgerToPostgres(new EscrowFiles(repo.path), opts.to, passwordFile, logger('keyfair:escrow:migrate'))
        print(options, r, () => [
          `ledger moved to ${r.to}: ${r.rows.accounts} accounts, ${r.rows.entries} entries, ${r.rows.postings} postings, ${r.rows.holds} holds`,
          `audit before and after: passed, deposits ${r.after.deposits} − withdrawals ${r.after.withdrawals}; balances + open holds = ${r.after.held}`,
          `${r.from} is left as it was; the escrow now uses PostgreSQL`
        ].join('\n'))
      } finally {
        await unlock()
      }
    })

  escrow.command('enroll')
    .description('get the escrow key certified by an agency with a one-time code')
    .requiredOption('--agency <multiaddr>', "the agency's multiaddr ending in /p2p/<peer id>")
    .requiredOption('--code <code>', 'the one-time code the agency operator gave you')
    .action(async (opts, command: Command) => {
      const r = await call<{ peerId: string, serial: string, notAfter: string }>(command, 'escrow.enroll', { agency: opts.agency, code: opts.code }, 60_000)
      print(command.optsWithGlobals(), r, () => `escrow ${r.peerId} enrolled: certificate ${r.serial} until ${r.notAfter}`)
    })

  escrow.command('info')
    .description('key size, currency, hold lifetime, unblind worker threads and CRL of the running escrow')
    .action(async (_opts, command: Command) => {
      const r = await call<Record<string, unknown>>(command, 'escrow.info')
      print(command.optsWithGlobals(), r, () => Object.entries(r).map(([k, v]) => `${k}: ${String(v)}`).join('\n'))
    })

  escrow.command('crl')
    .description("the agency's revocation list (pushed by the agency; fetched when none came for 2 minutes)")
    .command('refresh')
    .description("fetch the agency's current revocation list now")
    .action(async (_opts, command: Command) => {
      const r = await call<{ number: string, thisUpdate: string, nextUpdate: string, revoked: number }>(command, 'escrow.crlRefresh', {}, 30_000)
      print(command.optsWithGlobals(), r, () => `CRL number ${r.number}, ${r.revoked} revoked, next update ${r.nextUpdate}`)
    })

  for (const [name, description] of [['deposit', 'credit an account (a bank transfer in)'], ['withdraw', 'debit an account (a bank transfer out); refused beyond its balance']] as const) {
    escrow.command(`${name} <peer> <amount>`)
      .description(`${description}; amount in minor units (1250), or major units of the escrow's currency (12.50, 12.50 EUR)`)
      .option('--memo <text>', 'a note kept with the entry')
      .action(async (account: string, amount: string, opts, command: Command) => {
        // a decimal goes as it was typed: the escrow knows its currency's minor unit
        const value = /^\d+$/.test(amount) ? integerFlag(amount, 'amount') : amount
        const r = await call<{ account: string, balance: number, currency: string }>(command, `escrow.${name}`, { account, amount: value, memo: opts.memo })
        print(command.optsWithGlobals(), r, () => `${r.account}: balance ${formatMoney(r.balance, r.currency)}`)
      })
  }

  escrow.command('ledger')
    .description('postings, newest first')
    .option('--account <peer>', 'only this account (or hold:<id>, @world)')
    .option('--kind <kind>', 'deposit, withdraw, hold, release, refund or expire')
    .option('--since <iso-time>', 'only entries at or after this time')
    .option('--limit <n>', 'at most this many postings', '100')
    .action(async (opts, command: Command) => {
      const since = opts.since != null ? Date.parse(opts.since) : undefined
      if (since != null && Number.isNaN(since)) throw new BadRequestError(`--since '${opts.since}' is not a time`)
      const r = await call<{ postings: Posting[], currency: string }>(command, 'escrow.ledger', { account: opts.account, kind: opts.kind, since, limit: integerFlag(opts.limit, '--limit') })
      print(command.optsWithGlobals(), r, () => r.postings.length === 0
        ? 'no postings'
        : r.postings.map(p => `${new Date(p.at).toISOString()}  #${p.entry}  ${p.kind.padEnd(8)} ${formatMoney(p.amount, r.currency).padStart(14)}  ${p.account}${p.memo != null ? '  ' + p.memo : ''}`).join('\n'))
    })

  escrow.command('holds')
    .description('holds, newest first')
    .option('--state <state>', 'open, released or refunded')
    .option('--buyer <peer>', 'only this buyer')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (opts, command: Command) => {
      const r = await call<{ holds: Array<Record<string, unknown>>, currency: string }>(command, 'escrow.holds', { state: opts.state, buyer: opts.buyer, limit: integerFlag(opts.limit, '--limit') })
      print(command.optsWithGlobals(), r, () => r.holds.length === 0
        ? 'no holds'
        : r.holds.map(h => `${String(h.id)}  ${String(h.state).padEnd(8)} ${formatMoney(Number(h.amount), r.currency).padStart(12)}  buyer ${String(h.buyer)}  seller ${String(h.seller)}${h.endReason != null ? '  (' + String(h.endReason) + ')' : ''}`).join('\n'))
    })

  escrow.command('accounts')
    .description('every account and its balance, and the number of open holds')
    .action(async (_opts, command: Command) => {
      const r = await call<{ accounts: Array<{ account: string, balance: number }>, openHolds: number, currency: string }>(command, 'escrow.accounts')
      print(command.optsWithGlobals(), r, () => [...r.accounts.map(a => `${a.account}  ${formatMoney(a.balance, r.currency)}`), `${r.openHolds} open hold(s)`].join('\n'))
    })

  escrow.command('audit')
    .description('check the ledger: entries balance, balances match postings, none negative, each hold open or ended once, money conserved; exit 1 on any violation')
    .action(async (_opts, command: Command) => {
      const r = await call<AuditReport & { currency: string }>(command, 'escrow.audit', {}, 120_000)
      const money = (minor: number): string => formatMoney(minor, r.currency)
      print(command.optsWithGlobals(), r, () => [
        r.ok ? 'audit passed' : `AUDIT FAILED: ${r.violations.length} violation(s)`,
        ...r.violations.map(v => `  ${v}`),
        `accounts ${r.accounts}; holds open ${r.holds.open}, released ${r.holds.released}, refunded ${r.holds.refunded}`,
        `deposits ${money(r.deposits)} − withdrawals ${money(r.withdrawals)} = ${money(r.deposits - r.withdrawals)}; balances + open holds = ${money(r.held)}`
      ].join('\n'))
      if (!r.ok) process.exitCode = 1
    })
}

interface DeviceCertificateSummary {
  deviceId?: string
  signingCertificate: { serial: string, notAfter: string }
  encryptionCertificate: { serial: string, notAfter: string }
}

interface DeviceRevocation {
  state: 'revoked' | 'valid' | 'unknown'
  why?: string
  reason?: string
  revokedAt?: string
  crl?: { number: string, thisUpdate: string, ageMs: number, heardAt: string | null }
}

function revocationLines (r: DeviceRevocation): string[] {
  const seconds = (ms: number): string => ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`
  return [
    `revoked:     ${r.state === 'revoked' ? `yes (${r.reason ?? 'unspecified'}, ${r.revokedAt ?? 'date unknown'})` : r.state === 'valid' ? 'no' : `unknown: ${r.why ?? ''}`}`,
    ...(r.crl == null
      ? []
      : [`crl:         number ${r.crl.number}, signed ${seconds(r.crl.ageMs)} ago${r.crl.heardAt != null ? `, last heard ${seconds(Math.max(0, Date.now() - Date.parse(r.crl.heardAt)))} ago` : ''}`])
  ]
}

/** `keyfair device …`: the buyer node's sealed device, reached through the running node */
function addDeviceCommands (program: Command): void {
  const device = program.command('device')
    .description('the sealed device of a buyer node: key store, enrollment with an agency')
  const passphraseFile = (): Option => new Option('--passphrase-file <file>', `read the passphrase from a file (mode 0600) instead of $${PASSPHRASE_ENV} or a prompt`)

  device.command('status')
    .description('whether the device is initialised, unlocked and enrolled, and whether the agency revoked it')
    .action(async (_opts, command: Command) => {
      const s = await call<DeviceStatus & { revocation?: DeviceRevocation }>(command, 'device.status', {}, 30_000)
      const r = s.revocation
      print(command.optsWithGlobals(), s, () => [
        `device:      ${s.deviceId ?? '(none: run keyfair device init)'}`,
        `initialised: ${s.initialised ? 'yes' : 'no'}`,
        `unlocked:    ${s.unlocked ? 'yes' : 'no'}`,
        `enrolled:    ${s.enrolled ? (r?.state === 'revoked' ? 'yes, but REVOKED by the agency' : 'yes') : 'no'}`,
        ...(r == null ? [] : revocationLines(r))
      ].join('\n'))
    })

  device.command('init')
    .description('generate the device keys inside the sealed device and seal them under a passphrase')
    .addOption(passphraseFile())
    .option('--bits <n>', 'RSA key size of the signing and encryption keys', '3072')
    .action(async (opts, command: Command) => {
      const passphrase = await readPassphrase({ file: opts.passphraseFile, confirm: true, label: 'device passphrase' })
      const result = await call<{ deviceId: string }>(command, 'device.init', { passphrase, bits: integerFlag(opts.bits, '--bits') })
      print(command.optsWithGlobals(), result, () => `device ${result.deviceId} initialised and unlocked\nnext: keyfair device enroll --agency <agency> --code <code>`)
    })

  device.command('unlock')
    .description('open the device key store with its passphrase')
    .addOption(passphraseFile())
    .action(async (opts, command: Command) => {
      const passphrase = await readPassphrase({ file: opts.passphraseFile, label: 'device passphrase' })
      const result = await call<{ deviceId: string }>(command, 'device.unlock', { passphrase })
      print(command.optsWithGlobals(), result, () => `device ${result.deviceId} unlocked`)
    })

  device.command('lock')
    .description('drop the device secrets from memory until the next unlock')
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'device.lock')
      print(command.optsWithGlobals(), result, () => 'device locked')
    })

  device.command('enroll')
    .description('get the device certified by an agency with a one-time enrollment code')
    .requiredOption('--agency <address>', "the agency's peer id, or its multiaddr ending in /p2p/<peer id>")
    .requiredOption('--code <code>', 'the one-time code the agency operator gave you')
    .action(async (opts, command: Command) => {
      const result = await call<DeviceCertificateSummary>(command, 'device.enroll', { agency: opts.agency, code: opts.code }, 60_000)
      print(command.optsWithGlobals(), result, () => [
        `device ${result.deviceId ?? ''} enrolled`,
        `signing certificate    ${result.signingCertificate.serial} until ${result.signingCertificate.notAfter}`,
        `encryption certificate ${result.encryptionCertificate.serial} until ${result.encryptionCertificate.notAfter}`
      ].join('\n'))
    })

  device.command('certs')
    .description("print the device's certificates (PEM)")
    .action(async (_opts, command: Command) => {
      const result = await call<DeviceCertificates & DeviceCertificateSummary>(command, 'device.certificates')
      print(command.optsWithGlobals(), result, () => [result.signing, result.encryption, result.root].map(p => p.trim()).join('\n'))
    })
}

/** `keyfair agency …`: `init` works on the repo offline; the rest ask the node running `--role agency`. */
function addAgencyCommands (program: Command): void {
  const agency = program.command('agency')
    .description('the authentication agency (X.509 PKI): certifies devices and escrows, signs the revocation list')

  agency.command('init')
    .description('create the agency root CA: its key sealed in <repo>/keys, its certificate in <repo>/agency (offline; then: keyfair start --role agency)')
    .option('--bits <n>', 'RSA modulus of the root key', '3072')
    .option('--name <cn>', 'root certificate common name', 'keyfair agency')
    .option('--validity-days <n>', 'root certificate validity in days', '3650')
    .addOption(passphraseFileOption('the root key is sealed in the key store under it'))
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      const settings = { bits: integerFlag(opts.bits, '--bits'), commonName: opts.name, validityDays: integerFlag(opts.validityDays, '--validity-days') }
      await repo.assertInitialised()
      const keys = await unlockOrCreateKeys(repo, opts.passphraseFile)
      let result
      try {
        result = await initAgency(repo.path, { keys, ...settings })
      } finally {
        keys.lock()
      }
      print(options, { dir: result.dir, fingerprint: result.fingerprint, root: result.root }, () => [
        `agency root created in ${result.dir}`,
        `root SHA-256 fingerprint ${result.fingerprint}`,
        `start it with: keyfair --repo ${repo.path} start --role agency`
      ].join('\n'))
    })

  agency.command('enroll-code')
    .description('a one-time enrollment code for one device or one escrow')
    .requiredOption('--for <kind>', 'device or escrow')
    .option('--ttl <duration>', 'how long the code stays valid: 30s, 15m, 2h, 7d', '15m')
    .action(async (opts, command: Command) => {
      if (opts.for !== 'device' && opts.for !== 'escrow') throw new BadRequestError("--for must be 'device' or 'escrow'")
      const result = await call<{ code: string, kind: string, expiresAt: string }>(command, 'agency.enrollCode', { kind: opts.for, ttlMs: parseDuration(opts.ttl) })
      print(command.optsWithGlobals(), result, () => `${result.code}\n${result.kind} enrollment code, valid once, until ${result.expiresAt}`)
    })

  agency.command('issue')
    .description('certify a CSR file directly (the operator checked the requester out of band)')
    .argument('<csr-file>', 'PKCS#10 request, PEM')
    .requiredOption('--purpose <purpose>', 'device-signing, device-encryption or escrow')
    .option('--days <n>', 'validity in days (default: 365)')
    .option('--out <file>', 'write the certificate (PEM) here instead of stdout')
    .action(async (file: string, opts, command: Command) => {
      const csr = await readFile(file, 'utf8').catch((err: Error) => { throw new BadRequestError(`cannot read ${file}: ${err.message}`) })
      const body = { csr, purpose: opts.purpose, ...(opts.days == null ? {} : { validityDays: integerFlag(opts.days, '--days') }) }
      const result = await call<{ serial: string, purpose: string, subject: string, notAfter: string, pem: string }>(command, 'agency.issue', body)
      if (opts.out != null) await writeFile(opts.out, result.pem)
      print(command.optsWithGlobals(), result, () => opts.out == null
        ? result.pem.trimEnd()
        : `issued ${result.purpose} certificate ${result.serial} for ${result.subject}, valid until ${result.notAfter}: ${opts.out}`)
    })

  agency.command('revoke')
    .description('revoke every certificate of a serial, device id or escrow peer id, and re-sign the CRL')
    .argument('<target>', 'serial number (hex), device id or peer id')
    .addOption(new Option('--reason <reason>', 'CRL reason').choices(REVOCATION_REASONS).default('unspecified'))
    .action(async (target: string, opts, command: Command) => {
      const result = await call<{ revoked: Array<{ serial: string, purpose: string, subject: string }>, alreadyRevoked: string[], crlNumber: number }>(
        command, 'agency.revoke', { target, reason: opts.reason })
      print(command.optsWithGlobals(), result, () => [
        ...result.revoked.map(c => `revoked ${c.serial} (${c.purpose} of ${c.subject})`),
        ...result.alreadyRevoked.map(s => `already revoked ${s}`),
        `CRL number ${result.crlNumber}`
      ].join('\n'))
    })

  agency.command('crl')
    .description('the current signed revocation list (PEM on stdout, or DER to --out)')
    .option('--out <file>', 'write the CRL (DER) here')
    .action(async (opts, command: Command) => {
      const result = await call<{ number: number, thisUpdate: string, nextUpdate: string, revoked: number, crl: string }>(command, 'agency.crl')
      const der = Buffer.from(result.crl, 'base64')
      if (opts.out != null) await writeFile(opts.out, der)
      print(command.optsWithGlobals(), result, () => opts.out == null
        ? encodePem(der, 'X509 CRL').trimEnd()
        : `CRL number ${result.number}, ${result.revoked} revoked, next update ${result.nextUpdate}: ${opts.out}`)
    })

  agency.command('certs')
    .description('certificates the agency has issued')
    .action(async (_opts, command: Command) => {
      const result = await call<{ certificates: Array<{ serial: string, purpose: string, subject: string, notAfter: string, revokedAt?: string, reason?: string }> }>(command, 'agency.certs')
      print(command.optsWithGlobals(), result, () => result.certificates.length === 0
        ? 'no certificates issued'
        : result.certificates.map(c => `${c.serial}  ${c.purpose.padEnd(17)}  ${c.subject}  until ${c.notAfter}${c.revokedAt == null ? '' : `  REVOKED ${c.revokedAt} (${c.reason ?? 'unspecified'})`}`).join('\n'))
    })
}

/** The fields that have a value: a flag not given must not blank out a default */
function definedOnly<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

function integerFlag (value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new BadConfigError(`${flag} must be a whole number`)
  return Number(value)
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `30s`, `15m`, `2h`, `7d` in milliseconds. */
export function parseDuration (value: string): number {
  const match = /^(\d+)([smhd])$/.exec(value.trim())
  if (match == null) throw new BadRequestError(`bad duration '${value}' (expected e.g. 30s, 15m, 2h, 7d)`)
  return Number(match[1]) * DURATION_UNITS[match[2]!]!
}

/** Milliseconds as the largest whole unit that divides them: 30d, 12h, 90s */
export function formatDuration (ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS[unit]!
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms} ms`
}

export async function main (argv: string[]): Promise<void> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (err: unknown) {
    process.exitCode = reportError(err, { json: argv.includes('--json'), logFile: logUnexpected(program, err) })
  }
}

/** An unexpected error's stack goes to the repo's log file, when there is a repo: its path, else undefined */
function logUnexpected (program: Command, err: unknown): string | undefined {
  if (err instanceof KeyfairError || err instanceof CommanderError) return undefined
  const repo = repoOf(program.opts<GlobalOptions>())
  if (!existsSync(repo.identityFile)) return undefined
  const file = logFilePath(repo.path)
  const stack = err instanceof Error ? (err.stack ?? err.message) : String(err)
  return appendLogLine(file, `${new Date().toISOString()} ERROR keyfair:cli ${stack}\n`) ? file : undefined
}
