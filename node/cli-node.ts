// `keyfair init|start|id|peers|status|announce|providers|find|ui|stop`: the repo and the node itself.
import { spawn } from 'node:child_process'
import { Command, Option } from 'commander'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RepoExistsError } from './errors.ts'
import { extraNodeFlags, needsSealedKeys, parseBootstrapAddress, parseListenAddress, parsePort, parseRoles, roleNodeFlags, roleProcessEnv, ROLE_NAMES } from './config.ts'
import { runDaemon } from './daemon.ts'
import { formatBytes } from './format.ts'
import { LOG_LEVELS, parseLogLevel } from './log/levels.ts'
import { NodeKeyStore, checkRepoPassphrase, kdfFromEnv } from './keys/keystore.ts'
import { passphraseGiven, readPassphrase } from './passphrase.ts'
import { print, repoOf } from './cli-output.ts'
import { call, collect, definedOnly, integerFlag, passphraseFileOption } from './cli-call.ts'
import type { GlobalOptions } from './cli-output.ts'
import type { NodeConfig } from './config.ts'

/**
 * The same process (same pid) over again with V8 flags and an environment (glibc malloc
 * settings) that only count at start-up, unless it already has them. A supervisor talking
 * to the node over an IPC channel passes them itself: the channel would not survive the exec.
 */
function restartWith (flags: string[], env: NodeJS.ProcessEnv): void {
  if (typeof process.execve !== 'function' || process.channel != null) return
  const envChanged = Object.keys(env).some(name => env[name] !== process.env[name])
  if (!envChanged && flags.every(flag => process.execArgv.includes(flag))) return
  const names = new Set(flags.map(flag => flag.split('=')[0]))
  // a different value of the same flag would win over the new one, and this would repeat
  const kept = process.execArgv.filter(arg => !names.has(arg.split('=')[0]))
  process.execve(process.execPath, [process.execPath, ...flags, ...kept, process.argv[1]!, ...process.argv.slice(2)], env)
}

export function addNodeCommands (program: Command): void {
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
      restartWith([...roleNodeFlags(roles ?? config.roles), ...extraNodeFlags()], roleProcessEnv(roles ?? config.roles))
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
        ? { ...(await call(command, 'id')), running: true }
        : { peerId: peerIdFromPrivateKey(await repo.loadIdentity()).toString(), addresses: [], running: false }
      print(options, result, () => [result.peerId, ...result.addresses.map(a => `  ${a}`), ...(result.running ? [] : ['(no node running: no addresses)'])].join('\n'))
    })

  program.command('peers')
    .description('connected peers')
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'peers')
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
      const s = await call(command, 'status')
      print(command.optsWithGlobals(), s, () => [
        `peer id:       ${s.peerId}`,
        `roles:         ${s.roles.join(', ') || '(none)'}`,
        ...(s.escrow != null ? [`escrow:        ${s.escrow.mode}${ESCROW_MODE_NOTES[s.escrow.mode]}`] : []),
        `connections:   ${s.connections}`,
        `routing table: ${s.routingTableSize} peers (dht ${s.dhtMode})`,
        `announcements: ${s.announcements}`,
        `uptime:        ${Math.round(s.uptimeMs / 1000)} s`,
        `memory:        ${formatBytes(s.memory.rssBytes)} resident, ${formatBytes(s.memory.heapUsedBytes)} heap, ${formatBytes(s.memory.arrayBufferBytes)} buffers`,
        `collections:   ${s.memory.fullCollections} full, ${s.memory.youngCollections} young (${(s.memory.collectionMs / 1000).toFixed(1)} s paused)`,
        ...s.addresses.map(a => `listening:     ${a}`),
        `protocols:     ${s.protocols.join(' ')}`
      ].join('\n'))
    })

  program.command('announce')
    .description('provide a content id and its keywords in the DHT (kept and re-provided after restarts)')
    .argument('<content-id>', 'CID of the content')
    .argument('<keywords...>', 'words or phrases; each word becomes a keyword')
    .action(async (contentId: string, keywords: string[], _opts, command: Command) => {
      const result = await call(command, 'announce', { contentId, keywords }, 120_000)
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
      const result = await call(command, 'providers', { content: cid, timeoutMs }, timeoutMs + 10_000)
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
      const result = await call(command, 'find', { keyword, limit, timeoutMs }, (Number.isFinite(timeoutMs) ? timeoutMs : 0) + 10_000)
      print(command.optsWithGlobals(), result, () => [
        `${result.providers.length} provider(s) of '${keyword}' (${result.cid})`,
        ...result.providers.map(p => `${p.peerId}  ${p.multiaddrs.join(' ')}`)
      ].join('\n'))
    })

  program.command('ui')
    .description('print a one-time address that logs a browser in to this node\'s web UI (opened on a desktop)')
    .option('--no-open', 'only print the address, even on a desktop')
    .action(async (opts: { open: boolean }, command: Command) => {
      const result = await call(command, 'ui.login')
      print(command.optsWithGlobals(), result, () => `${result.url}\n(works once, until ${result.expiresAt})`)
      if (opts.open && command.optsWithGlobals<GlobalOptions>().json !== true) openOnDesktop(result.url)
    })

  program.command('stop')
    .description('stop the running node')
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'stop')
      print(command.optsWithGlobals(), result, () => 'stopping')
    })
}

/** Hands the address to the desktop's browser, where there is a desktop; quietly nothing elsewhere */
function openOnDesktop (url: string): void {
  const desktop = process.platform === 'darwin' || (process.platform === 'linux' && (process.env.DISPLAY != null || process.env.WAYLAND_DISPLAY != null))
  if (!desktop) return
  const child = spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [url], { stdio: 'ignore', detached: true })
  child.on('error', () => {})
  child.unref()
}
