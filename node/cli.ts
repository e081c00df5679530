import { Command, Option } from 'commander'
import { KeyfairError } from '../protocols/errors.ts'
import { parseBootstrapAddress, parseListenAddress, parsePort, parseRoles, ROLE_NAMES } from './config.ts'
import { ControlClient } from './control/client.ts'
import { runDaemon } from './daemon.ts'
import { VERSION } from './keyfair-node.ts'
import { Repo, resolveRepoPath } from './repo.ts'
import type { NodeConfig } from './config.ts'
import type { AnnounceResult, Provider } from './discovery/discovery.ts'
import type { NodeStatus, PeerInfo } from './keyfair-node.ts'

interface GlobalOptions {
  repo?: string
  json?: boolean
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

function print (options: GlobalOptions, value: unknown, human: () => string): void {
  process.stdout.write(options.json === true ? JSON.stringify(value) + '\n' : human() + '\n')
}

function repoOf (options: GlobalOptions): Repo {
  return new Repo(resolveRepoPath(options.repo))
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
    .showHelpAfterError('(run keyfair --help for usage)')

  program.command('init')
    .description('create a repo: persistent peer identity, control API token, config')
    .option('--listen <multiaddr>', 'default listen address (repeatable)', collect)
    .option('--bootstrap <multiaddr>', 'default bootstrap peer /ip4/…/tcp/…/p2p/<id> (repeatable)', collect)
    .option('--role <roles>', `default roles, comma-separated (${ROLE_NAMES.join(', ')})`)
    .option('--api-port <port>', 'control API port on 127.0.0.1 (0: any free port)')
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      const config: Partial<NodeConfig> = {}
      if (opts.listen != null) config.listen = opts.listen.map((a: string) => parseListenAddress(a).toString())
      if (opts.bootstrap != null) config.bootstrap = opts.bootstrap.map((a: string) => parseBootstrapAddress(a).toString())
      if (opts.role != null) config.roles = parseRoles(opts.role)
      if (opts.apiPort != null) config.apiPort = parsePort(opts.apiPort, '--api-port')
      const { peerId } = await repo.init(config)
      print(options, { repo: repo.path, peerId }, () => `initialised ${repo.path}\npeer id ${peerId}`)
    })

  program.command('start')
    .description('run the node in the foreground until Ctrl-C')
    .option('--role <roles>', `roles to run, comma-separated (${ROLE_NAMES.join(', ')})`)
    .option('--listen <multiaddr>', 'listen address, e.g. /ip4/127.0.0.1/tcp/4001 (repeatable)', collect)
    .option('--bootstrap <multiaddr>', 'peer to join through, /ip4/…/tcp/…/p2p/<id> (repeatable)', collect)
    .option('--api-port <port>', 'control API port on 127.0.0.1 (0: any free port)')
    .option('--init', 'initialise the repo first if it does not exist')
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      // validate flags before touching the repo, so a typo never half-starts a node
      const roles = opts.role != null ? parseRoles(opts.role) : undefined
      const listen = opts.listen?.map((a: string) => parseListenAddress(a).toString())
      const bootstrap = opts.bootstrap?.map((a: string) => parseBootstrapAddress(a).toString())
      const apiPort = opts.apiPort != null ? parsePort(opts.apiPort, '--api-port') : undefined
      if (opts.init === true && !(await repo.exists())) await repo.init()
      const config = await repo.readConfig()
      await runDaemon({
        repo,
        roles: roles ?? config.roles,
        listen: listen ?? config.listen,
        bootstrap: bootstrap ?? config.bootstrap,
        apiPort: apiPort ?? config.apiPort,
        onReady: info => {
          print(options, { event: 'ready', ...info }, () => [
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
    .description('peer id and addresses of the running node')
    .action(async (_opts, command: Command) => {
      const result = await call<{ peerId: string, addresses: string[] }>(command, 'id')
      print(command.optsWithGlobals(), result, () => [result.peerId, ...result.addresses.map(a => `  ${a}`)].join('\n'))
    })

  program.command('peers')
    .description('connected peers')
    .action(async (_opts, command: Command) => {
      const result = await call<{ peers: PeerInfo[] }>(command, 'peers')
      print(command.optsWithGlobals(), result, () => result.peers.length === 0
        ? 'no connected peers'
        : result.peers.map(p => `${p.peerId}  ${p.addresses.join(' ')}  ${p.direction}`).join('\n'))
    })

  program.command('status')
    .description('roles, protocols, connections and DHT state of the running node')
    .action(async (_opts, command: Command) => {
      const s = await call<NodeStatus>(command, 'status')
      print(command.optsWithGlobals(), s, () => [
        `peer id:       ${s.peerId}`,
        `roles:         ${s.roles.join(', ') || '(none)'}`,
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

  return program
}

export async function main (argv: string[]): Promise<void> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (err: any) {
    const json = argv.includes('--json')
    const known = err instanceof KeyfairError
    const code = known ? err.code : 'ERR_UNEXPECTED'
    const message = known ? err.message : `unexpected error: ${err?.message ?? String(err)}`
    if (json) process.stderr.write(JSON.stringify({ error: { code, message } }) + '\n')
    else process.stderr.write(`keyfair: ${message}\n`)
    if (!known && process.env.DEBUG != null) process.stderr.write(`${err?.stack ?? ''}\n`)
    process.exitCode = 1
  }
}

