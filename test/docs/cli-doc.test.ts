// docs/cli.md documents every command of the keyfair program: each command and subcommand of
// buildProgram() has a heading, or a list entry under its group's heading.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { buildProgram } from '../../node/cli.ts'
import type { Command } from 'commander'

const CLI_DOC = new URL('../../docs/cli.md', import.meta.url)

function headings (markdown: string): string[] {
  return markdown.split('\n').filter(line => /^#{1,6} /.test(line)).map(line => line.replace(/^#+ /, '').trim())
}

/** Every subcommand's path below `command`, e.g. ['escrow', 'crl', 'refresh'] */
function subcommandPaths (command: Command, prefix: string[] = []): string[][] {
  return command.commands.flatMap(c => [[...prefix, c.name()], ...subcommandPaths(c, [...prefix, c.name()])])
}

describe('docs/cli.md', function () {
  it('has a heading `keyfair <command>` for every top-level command', async function () {
    const titles = new Set(headings(await readFile(CLI_DOC, 'utf8')))
    const commands = buildProgram().commands.map(c => c.name())
    assert.ok(commands.includes('buy') && commands.includes('devnet') && commands.includes('escrow'), commands.join(', '))
    const missing = commands.filter(name => !titles.has(`keyfair ${name}`))
    assert.deepEqual(missing, [], `no heading for: ${missing.join(', ')}`)
  })

  it('names every subcommand (e.g. `escrow crl refresh`) in its text', async function () {
    const doc = await readFile(CLI_DOC, 'utf8')
    const nested = subcommandPaths(buildProgram()).filter(path => path.length > 1)
    assert.ok(nested.length > 20, `${nested.length} subcommands`)
    const missing = nested.map(path => path.join(' ')).filter(path => !doc.includes(`\`${path}`) && !doc.includes(`keyfair ${path}`))
    assert.deepEqual(missing, [], `not named: ${missing.join(', ')}`)
  })
})
