// The passphrase prompt in a real pseudo-terminal (tmux): the prompt is visible, what is typed
// is not, and a wrong passphrase changes nothing in the repo.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { KEYFAIR_BIN } from '../../scripts/swarm.ts'
import { runCli } from '../helpers/cli.ts'
import { TEST_PASSPHRASE, FAST_KDF } from '../helpers/keys.ts'
import { filesUnder } from '../helpers/scan.ts'

const run = promisify(execFile)

/** Every file of the repo and its SHA-256 */
async function hashes (root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const file of await filesUnder(root)) out[relative(root, file)] = createHash('sha256').update(await readFile(file)).digest('hex')
  return out
}

/** A tmux server of this test's own (its own socket), so other sessions are never touched */
class Terminal {
  private readonly socket = `keyfair-prompt-${process.pid}-${Math.random().toString(36).slice(2)}`

  async start (command: string): Promise<void> {
    await this.tmux('new-session', '-d', '-x', '120', '-y', '30', command)
  }

  async screen (): Promise<string> {
    return (await this.tmux('capture-pane', '-p')).stdout
  }

  async type (text: string): Promise<void> {
    await this.tmux('send-keys', '-l', text)
  }

  async enter (): Promise<void> {
    await this.key('Enter')
  }

  /** A key by tmux's name for it: Enter, C-c */
  async key (name: string): Promise<void> {
    await this.tmux('send-keys', name)
  }

  /** The screen once `pattern` shows on it; fails after `timeoutMs` */
  async waitFor (pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const signal = AbortSignal.timeout(timeoutMs)
    let screen = ''
    while (!signal.aborted) {
      screen = await this.screen()
      if (pattern.test(screen)) return screen
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    throw new Error(`${pattern} never showed; the screen:\n${screen}`)
  }

  async stop (): Promise<void> {
    await this.tmux('kill-server').catch(() => {})
  }

  private async tmux (...args: string[]): Promise<{ stdout: string }> {
    return run('tmux', ['-L', this.socket, '-f', '/dev/null', ...args], { env: { ...process.env, TMUX: '' } })
  }
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

describe('passphrase prompt on a terminal', function () {
  this.timeout(120_000)
  let dir: string
  let repo: string
  let terminal: Terminal

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'keyfair-prompt-'))
    repo = join(dir, 'repo')
    terminal = new Terminal()
    // a repo whose key store is sealed under the test passphrase
    const init = await runCli(['--repo', repo, 'init'])
    assert.equal(init.code, 0, init.stderr)
  })

  afterEach(async function () {
    await terminal.stop()
    await rm(dir, { recursive: true, force: true })
  })

  /** `keyfair escrow init` on the terminal, with no passphrase in the environment */
  function escrowInit (): string {
    const cli = [process.execPath, KEYFAIR_BIN, '--repo', repo, 'escrow', 'init', '--bits', '2048'].map(shellQuote).join(' ')
    return `env -u KEYFAIR_PASSPHRASE KEYFAIR_KDF_N=${FAST_KDF.N} ${cli}; echo "EXIT=$?"; sleep 600`
  }

  it('shows the prompt, echoes nothing typed, and refuses a wrong passphrase with the repo unchanged', async function () {
    const before = await hashes(repo)
    await terminal.start(escrowInit())
    const prompt = await terminal.waitFor(/passphrase:/)
    assert.doesNotMatch(prompt, /EXIT=/)
    const typed = 'not-the-passphrase-QZX'
    await terminal.type(typed)
    // the prompt re-renders on each key: give it time to show anything it would
    await new Promise(resolve => setTimeout(resolve, 500))
    const typing = await terminal.screen()
    assert.match(typing, /passphrase:/)
    assert.ok(!typing.includes('QZX') && !typing.includes('not-the'), `typed characters on screen:\n${typing}`)
    assert.doesNotMatch(typing, /\*{3,}/, 'no mask characters either: the length is secret too')
    await terminal.enter()
    const after = await terminal.waitFor(/EXIT=\d+/)
    assert.match(after, /EXIT=1/)
    assert.match(after, /wrong passphrase/)
    assert.ok(!after.includes('QZX'))
    assert.deepEqual(await hashes(repo), before)
  })

  it('takes the right passphrase typed on the prompt', async function () {
    await terminal.start(escrowInit())
    await terminal.waitFor(/passphrase:/)
    await terminal.type(TEST_PASSPHRASE)
    await terminal.enter()
    const after = await terminal.waitFor(/EXIT=\d+/, 60_000)
    assert.match(after, /EXIT=0/, after)
    assert.match(after, /escrow key created/)
    assert.ok(!after.includes(TEST_PASSPHRASE))
  })

  it('Ctrl-C on the prompt ends the command with a clear error and the repo unchanged', async function () {
    const before = await hashes(repo)
    await terminal.start(escrowInit())
    await terminal.waitFor(/passphrase:/)
    await terminal.type('half')
    await terminal.key('C-c')
    const after = await terminal.waitFor(/EXIT=\d+/)
    assert.match(after, /EXIT=1/)
    assert.match(after, /keyfair: no passphrase given: the prompt was closed/)
    assert.deepEqual(await hashes(repo), before)
  })

  it('without a terminal the passphrase still comes from the environment, never a prompt', async function () {
    const r = await runCli(['--repo', repo, '--json', 'escrow', 'init', '--bits', '2048'], { KEYFAIR_PASSPHRASE: '' })
    assert.equal(r.code, 1)
    assert.equal(JSON.parse(r.stderr).error.code, 'ERR_PASSPHRASE_REQUIRED')
    const ok = await runCli(['--repo', repo, '--json', 'escrow', 'init', '--bits', '2048'])
    assert.equal(ok.code, 0, ok.stderr)
  })
})
