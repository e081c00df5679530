// `keyfair config …` and `keyfair version`: they read the repo itself, so they work with no
// node running. A setting changed while a node runs takes effect at its next start.
import { Command } from 'commander'
import { CONFIG_KEYS, configKey, showValue } from './config-keys.ts'
import { VERSION } from './keyfair-node.ts'
import { print, repoOf } from './cli-output.ts'
import type { GlobalOptions } from './cli-output.ts'

export function addConfigCommands (program: Command): void {
  const config = program.command('config')
    .description("the repo's settings (config.json), read and written offline; a running node takes them at its next start")

  config.command('show')
    .description('every setting')
    .action(async (_opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      const value = await repo.readConfig()
      print(options, value, () => Object.entries(CONFIG_KEYS)
        .map(([key, k]) => `${key.padEnd(20)} ${showValue(k.get(value))}`).join('\n'))
    })

  config.command('get')
    .description('one setting')
    .argument('<key>', Object.keys(CONFIG_KEYS).join(', '))
    .action(async (key: string, _opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const k = configKey(key)
      const value = k.get(await repoOf(options).readConfig())
      print(options, { key, value }, () => showValue(value))
    })

  config.command('set')
    .description('change one setting; the value is checked first (lists comma-separated)')
    .argument('<key>', Object.keys(CONFIG_KEYS).join(', '))
    .argument('<value>')
    .action(async (key: string, text: string, _opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const k = configKey(key)
      const repo = repoOf(options)
      const value = await repo.readConfig()
      k.set(value, text)
      await repo.writeConfig(value)
      const running = await repo.running()
      print(options, { key, value: k.get(value), restartNeeded: running }, () => [
        `${key} = ${showValue(k.get(value))}`,
        ...(running
          ? [`the running node keeps its old ${key} until it restarts (keyfair stop, then keyfair start)${key === 'logLevel' ? '; keyfair log level <level> changes it now' : ''}`]
          : [])
      ].join('\n'))
    })

  program.command('version')
    .description('the version of keyfair and of Node.js (offline)')
    .action((_opts, command: Command) => {
      const value = { version: VERSION, node: process.version, platform: `${process.platform}-${process.arch}` }
      print(command.optsWithGlobals<GlobalOptions>(), value, () => `keyfair version ${VERSION} (Node.js ${process.version}, ${value.platform})`)
    })
}
