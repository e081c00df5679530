// Everyday CLI habits on real processes: offline commands, flags kept by `start --init`,
// usage errors, shell completion, the node's log file and its level.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { buildProgram } from '../../node/cli.ts'
import { runCli, startNodeProcess } from '../helpers/cli.ts'
import { TEST_PASSPHRASE } from '../helpers/keys.ts'
import { repoSecrets, scan } from '../helpers/scan.ts'
import type { NodeProcess } from '../helpers/cli.ts'

const run = promisify(execFile)
const LISTEN = ['--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0']

async function json (args: string[], env: NodeJS.ProcessEnv = {}): Promise<any> {
  const r = await runCli(['--json', ...args], env)
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout)
}

describe('CLI habits', function () {
  this.timeout(180_000)
  let dir: string
  const nodes: NodeProcess[] = []

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-habits-'))
  })

  afterEach(async function () {
    await Promise.all(nodes.splice(0).map(async n => { await n.stop() }))
    await rm(dir, { recursive: true, force: true })
  })

  async function start (args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
    const node = await startNodeProcess(args, env)
    nodes.push(node)
    return node
  }

  describe('usage errors', function () {
    const cases: Array<{ args: string[], message: RegExp, help: string }> = [
      { args: ['frobnicate'], message: /unknown command 'frobnicate'/, help: 'keyfair --help' },
      { args: ['buy'], message: /missing required argument 'offer'/, help: 'keyfair buy --help' },
      { args: ['start', '--log-level', 'loud'], message: /'loud' is invalid.*error, warn, info, debug/, help: 'keyfair start --help' },
      { args: ['escrow'], message: /missing subcommand/, help: 'keyfair escrow --help' },
      { args: ['escrow', 'deposit', '--nope'], message: /unknown option '--nope'/, help: 'keyfair escrow deposit --help' }
    ]

    for (const { args, message, help } of cases) {
      it(`keyfair ${args.join(' ')}: one JSON error with --json, one line naming the help otherwise`, async function () {
        const asJson = await runCli(['--json', ...args])
        assert.equal(asJson.code, 1)
        assert.equal(asJson.stdout, '')
        const lines = asJson.stderr.trim().split('\n')
        assert.equal(lines.length, 1, asJson.stderr)
        const { error } = JSON.parse(lines[0]!)
        assert.equal(error.code, 'ERR_USAGE')
        assert.match(error.message, message)

        const human = await runCli(args)
        assert.equal(human.code, 1)
        const line = human.stderr.trim().split('\n').find(l => l.startsWith('keyfair: '))
        assert.ok(line != null, human.stderr)
        assert.match(line, message)
        assert.ok(line.endsWith(`(see ${help})`), line)
      })
    }

    it('help and version still exit 0', async function () {
      const help = await runCli(['buy', '--help'])
      assert.equal(help.code, 0)
      assert.match(help.stdout, /Usage: keyfair buy/)
      const version = await runCli(['--version'])
      assert.equal(version.code, 0)
      assert.match(version.stdout, /^\d+\.\d+\.\d+/)
    })

    it('a bad amount is refused with what the currency allows', async function () {
      const r = await runCli(['--json', 'publish', '/nonexistent', '--title', 't', '--price', '12.505', '--currency', 'EUR'])
      assert.equal(r.code, 1)
      assert.deepEqual(JSON.parse(r.stderr).error, { code: 'ERR_BAD_AMOUNT', message: "'12.505' has 3 decimals, but EUR has 2" })
      const help = await runCli(['publish', '--help'])
      assert.match(help.stdout.replace(/\s+/g, ' '), /major units of --currency \(12\.50, 12\.50 EUR\)/)
    })
  })

  describe('shell completion', function () {
    const topLevel = buildProgram().commands.map(c => c.name())

    it('bash: sourcing the script registers keyfair, and it completes every top-level command', async function () {
      const script = join(dir, 'keyfair.bash')
      const r = await runCli(['completion', 'bash'])
      assert.equal(r.code, 0, r.stderr)
      await writeFile(script, r.stdout)
      const probe = [
        `source ${script}`,
        'complete -p keyfair',
        'COMP_WORDS=(keyfair ""); COMP_CWORD=1; _keyfair; echo "TOP ${COMPREPLY[*]}"',
        'COMP_WORDS=(keyfair --repo /r escrow dep); COMP_CWORD=4; _keyfair; echo "SUB ${COMPREPLY[*]}"',
        'COMP_WORDS=(keyfair start --log-level ""); COMP_CWORD=3; _keyfair; echo "LEVEL ${COMPREPLY[*]}"'
      ].join('\n')
      const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', probe])
      assert.match(stdout, /^complete -o default -F _keyfair keyfair$/m)
      const top = stdout.split('\n').find(l => l.startsWith('TOP '))!.slice(4).split(' ')
      assert.ok(topLevel.length >= 30, topLevel.join(' '))
      for (const name of topLevel) assert.ok(top.includes(name), `${name} missing from ${top.join(' ')}`)
      assert.match(stdout, /^SUB deposit$/m)
      assert.match(stdout, /^LEVEL error warn info debug$/m)
    })

    it('zsh: the same completion through bashcompinit; an unknown shell is a usage error', async function () {
      const r = await runCli(['completion', 'zsh'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^#compdef keyfair/)
      assert.match(r.stdout, /bashcompinit/)
      assert.match(r.stdout, /complete -o default -F _keyfair keyfair/)
      const fish = await runCli(['--json', 'completion', 'fish'])
      assert.equal(fish.code, 1)
      assert.equal(JSON.parse(fish.stderr).error.code, 'ERR_USAGE')
    })
  })

  describe('offline commands', function () {
    it('version, id and config work with no node running; config set checks key and value', async function () {
      const repo = join(dir, 'r')
      assert.match((await json(['version'])).version, /^\d+\.\d+\.\d+/)
      const init = await json(['--repo', repo, 'init'])
      const id = await json(['--repo', repo, 'id'])
      assert.deepEqual(id, { peerId: init.peerId, addresses: [], running: false })

      assert.deepEqual((await json(['--repo', repo, 'config', 'get', 'roles'])).value, ['buyer'])
      assert.equal((await json(['--repo', repo, 'config', 'get', 'logLevel'])).value, 'info')
      const set = await json(['--repo', repo, 'config', 'set', 'roles', 'buyer,seller'])
      assert.deepEqual(set, { key: 'roles', value: ['buyer', 'seller'], restartNeeded: false })
      assert.deepEqual(JSON.parse(await readFile(join(repo, 'config.json'), 'utf8')).roles, ['buyer', 'seller'])
      const show = await runCli(['--repo', repo, 'config', 'show'])
      assert.match(show.stdout, /^roles\s+buyer,seller$/m)

      for (const [args, pattern] of [
        [['config', 'set', 'colour', 'blue'], /unknown config key 'colour' \(known: roles, listen/],
        [['config', 'set', 'apiPort', 'ninety'], /apiPort must be a port number/],
        [['config', 'set', 'roles', 'buyer,miner'], /unknown role 'miner'/],
        [['config', 'set', 'logLevel', 'loud'], /logLevel must be one of error, warn, info, debug/],
        [['config', 'set', 'bootstrap', '/ip4/127.0.0.1/tcp/1'], /must end in \/p2p/]
      ] as const) {
        const before = await readFile(join(repo, 'config.json'), 'utf8')
        const r = await runCli(['--repo', repo, 'config', ...args.slice(1)])
        assert.equal(r.code, 1, r.stdout)
        assert.match(r.stderr, pattern)
        assert.equal(await readFile(join(repo, 'config.json'), 'utf8'), before, 'nothing written')
      }
    })

    it("an unexpected error names the repo's log file, where its stack went", async function () {
      const repo = join(dir, 'r')
      await json(['--repo', repo, 'init'])
      // a config.json that cannot be read as a file: an error no keyfair code expects
      await rm(join(repo, 'config.json'))
      await mkdir(join(repo, 'config.json'))
      const log = join(repo, 'logs', 'keyfair.log')
      const human = await runCli(['--repo', repo, 'config', 'show'])
      assert.equal(human.code, 1)
      assert.match(human.stderr, new RegExp(`^keyfair: unexpected error: EISDIR.* \\(details in ${log}\\)\n$`))
      const asJson = await runCli(['--repo', repo, '--json', 'config', 'show'])
      assert.equal(JSON.parse(asJson.stderr).error.code, 'ERR_UNEXPECTED')
      assert.match(await readFile(log, 'utf8'), /ERROR keyfair:cli Error: EISDIR[^\n]*\n\s+at /)
    })
  })

  describe('start keeps its flags', function () {
    it('start --init saves roles, peers and log level; a plain start comes back the same; later flags hold for one run', async function () {
      const hub = await start(['--repo', join(dir, 'hub'), 'start', '--init', '--role', 'buyer', ...LISTEN])
      const repo = join(dir, 'node')
      const bootstrap = `${hub.addresses[0]!}`
      assert.match(bootstrap, /\/p2p\//)
      let node = await start(['--repo', repo, 'start', '--init', '--role', 'buyer,seller', '--bootstrap', bootstrap, '--log-level', 'debug', ...LISTEN])
      await node.stop()
      const saved = JSON.parse(await readFile(join(repo, 'config.json'), 'utf8'))
      assert.deepEqual(saved.roles, ['buyer', 'seller'])
      assert.deepEqual(saved.bootstrap, [bootstrap])
      assert.equal(saved.logLevel, 'debug')

      // plain: the saved roles, and joined through the saved peer
      node = await start(['--repo', repo, 'start'])
      const status = await json(['--repo', repo, 'status'])
      assert.deepEqual(status.roles, ['buyer', 'seller'])
      const peers = await waitFor(async () => {
        const { peers } = await json(['--repo', repo, 'peers'])
        return peers.some((p: { peerId: string }) => p.peerId === hub.peerId) ? peers : undefined
      })
      assert.ok(peers.length > 0)
      const online = await json(['--repo', repo, 'id'])
      assert.equal(online.running, true)
      assert.ok(online.addresses.length > 0)
      // a setting changed while it runs waits for the restart, and says so
      const set = await runCli(['--repo', repo, 'config', 'set', 'apiPort', '0'])
      assert.equal(set.code, 0, set.stderr)
      assert.match(set.stdout, /keeps its old apiPort until it restarts/)
      await node.stop()

      // explicit flags: this run only
      node = await start(['--repo', repo, 'start', '--role', 'buyer'])
      assert.deepEqual((await json(['--repo', repo, 'status'])).roles, ['buyer'])
      await node.stop()
      assert.deepEqual(JSON.parse(await readFile(join(repo, 'config.json'), 'utf8')).roles, ['buyer', 'seller'])

      const help = await runCli(['start', '--help'])
      assert.match(help.stdout.replace(/\s+/g, ' '), /for this run only/)
    })
  })

  describe('the node log file', function () {
    it('records at the saved level, changes level on the running node, and DEBUG still reaches stderr', async function () {
      const repo = join(dir, 'r')
      const log = join(repo, 'logs', 'keyfair.log')
      const node = await start(['--repo', repo, 'start', '--init', '--log-level', 'info', ...LISTEN], { DEBUG: 'keyfair:daemon*' })
      const stderr: string[] = []
      node.child.stderr!.on('data', (chunk: Buffer) => { stderr.push(chunk.toString()) })
      let text = await readFile(log, 'utf8')
      assert.match(text, new RegExp(`INFO  keyfair:daemon:info node ${node.peerId} running with roles buyer`))
      assert.doesNotMatch(text, / DEBUG /, 'nothing below info')
      assert.equal((await stat(log)).mode & 0o777, 0o600)

      assert.deepEqual(await json(['--repo', repo, 'log', 'level']), { level: 'info', file: log })
      assert.equal((await json(['--repo', repo, 'log', 'level', 'error'])).level, 'error')
      await json(['--repo', repo, 'log', 'level', 'warn'])
      text = await readFile(log, 'utf8')
      assert.doesNotMatch(text, /log level now (error|warn)/, 'an info line is not written at error or warn')
      await json(['--repo', repo, 'log', 'level', 'debug'])
      text = await readFile(log, 'utf8')
      assert.match(text, /INFO  keyfair:daemon:info log level now debug/)
      const bad = await runCli(['--repo', repo, '--json', 'log', 'level', 'loud'])
      assert.equal(bad.code, 1)
      assert.equal(JSON.parse(bad.stderr).error.code, 'ERR_BAD_CONFIG')

      await node.stop()
      // DEBUG=keyfair:daemon* kept its stderr output, as before the log file
      assert.match(stderr.join(''), /keyfair:daemon:info stopping: SIGTERM/)
      assert.match(await readFile(log, 'utf8'), /stopping: SIGTERM/)
    })

    it('holds no key material, passphrase or API token at the debug level', async function () {
      const repo = join(dir, 'escrow')
      assert.equal((await runCli(['--repo', repo, 'init'])).code, 0)
      assert.equal((await runCli(['--repo', repo, 'escrow', 'init', '--bits', '2048'])).code, 0)
      const node = await start(['--repo', repo, 'start', '--role', 'escrow,buyer', '--log-level', 'debug', ...LISTEN])
      // amounts in major units, checked by the escrow against its currency (enrolled or not)
      assert.deepEqual(await json(['--repo', repo, 'escrow', 'deposit', node.peerId, '12.50']), { account: node.peerId, balance: 1250, currency: 'EUR' })
      assert.equal((await json(['--repo', repo, 'escrow', 'withdraw', node.peerId, '250'])).balance, 1000)
      const tooFine = await runCli(['--repo', repo, '--json', 'escrow', 'deposit', node.peerId, '1.005'])
      assert.deepEqual(JSON.parse(tooFine.stderr).error, { code: 'ERR_BAD_AMOUNT', message: "'1.005' has 3 decimals, but EUR has 2" })
      const accounts = await runCli(['--repo', repo, 'escrow', 'accounts'])
      assert.match(accounts.stdout, new RegExp(`^${node.peerId}  €10\\.00$`, 'm'), accounts.stdout)
      // the passphrase crosses the control API to the sealed device
      await json(['--repo', repo, 'device', 'init', '--bits', '2048'])
      await json(['--repo', repo, 'device', 'lock'])
      await json(['--repo', repo, 'device', 'unlock'])
      await json(['--repo', repo, 'status'])
      await node.stop()
      const text = await readFile(join(repo, 'logs', 'keyfair.log'), 'utf8')
      assert.match(text, / DEBUG /, 'the debug level was on')
      const token = (await readFile(join(repo, 'api.token'), 'utf8')).trim()
      const secrets = [
        ...await repoSecrets(repo, TEST_PASSPHRASE),
        { name: 'passphrase', bytes: Buffer.from(TEST_PASSPHRASE) },
        { name: 'api token', bytes: Buffer.from(token) }
      ]
      assert.ok(secrets.length >= 11, 'the escrow key and the device keys are looked for')
      assert.deepEqual(await scan([join(repo, 'logs')], secrets), [])
    })
  })
})

async function waitFor<T> (probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs)
  while (!signal.aborted) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  throw new Error('timed out')
}
