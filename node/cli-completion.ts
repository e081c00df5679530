// `keyfair completion bash|zsh`: a completion script made from the command tree itself, so it
// never lags behind the commands. zsh runs the same function through bashcompinit.
import { Argument, Command } from 'commander'
import { print } from './cli-output.ts'
import type { GlobalOptions } from './cli-output.ts'

const SHELLS = ['bash', 'zsh'] as const

interface Node { path: string, subcommands: string[], options: string[] }

function walk (command: Command, path: string, out: Node[]): Node[] {
  const visible = command.commands.filter(c => !(c as unknown as { _hidden?: boolean })._hidden)
  const options = command.options.filter(o => !o.hidden && o.long != null).map(o => o.long!)
  out.push({ path, subcommands: visible.map(c => c.name()), options: [...options, '--help'] })
  for (const sub of visible) walk(sub, path === '' ? sub.name() : `${path} ${sub.name()}`, out)
  return out
}

/** Every option with a fixed set of values, and those values */
function choices (command: Command, out = new Map<string, string[]>()): Map<string, string[]> {
  for (const option of command.options) {
    if (option.long != null && option.argChoices != null) out.set(option.long, option.argChoices)
  }
  for (const sub of command.commands) choices(sub, out)
  return out
}

const quote = (words: string[]): string => words.join(' ').replace(/[^\w\s.,:/@=-]/g, '')

/** The bash completion function of `program` (also what zsh sources through bashcompinit) */
export function bashCompletion (program: Command): string {
  const nodes = walk(program, '', [])
  const globals = program.options.filter(o => o.long != null && o.long !== '--version').map(o => o.long!)
  const subcommandCases = nodes.filter(n => n.subcommands.length > 0)
    .map(n => `    "${n.path}") echo "${quote(n.subcommands)}" ;;`).join('\n')
  const wordCases = nodes
    .map(n => `    "${n.path}") words="${quote([...n.subcommands, ...n.options, ...(n.path === '' ? [] : globals)])}" ;;`).join('\n')
  const choiceCases = [...choices(program)].map(([flag, values]) => `    ${flag}) COMPREPLY=( $(compgen -W "${quote(values)}" -- "$cur") ); return ;;`).join('\n')
  return `# keyfair completion for bash: source it, or save it as /etc/bash_completion.d/keyfair
_keyfair_subcommands() {
  case "$1" in
${subcommandCases}
  esac
}
_keyfair() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" path="" i w subs words
  case "$prev" in
${choiceCases}
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    subs=" $(_keyfair_subcommands "$path") "
    [[ "$subs" == *" $w "* ]] && path="\${path:+$path }$w"
  done
  case "$path" in
${wordCases}
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -o default -F _keyfair keyfair
`
}

export function completionScript (program: Command, shell: typeof SHELLS[number]): string {
  const bash = bashCompletion(program)
  if (shell === 'bash') return bash
  return `#compdef keyfair
# keyfair completion for zsh: source it from ~/.zshrc
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bash}`
}

export function addCompletionCommand (program: Command): void {
  program.command('completion')
    .description('print a shell completion script: eval "$(keyfair completion bash)", or source it from ~/.zshrc for zsh')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(SHELLS))
    .action((shell: typeof SHELLS[number], _opts, command: Command) => {
      const script = completionScript(program, shell)
      print(command.optsWithGlobals<GlobalOptions>(), { shell, script }, () => script.trimEnd())
    })
}
