/**
 * `tessera completion bash|zsh`: a shell completion script generated from the command tree
 * itself, so a new command or flag completes without anyone editing a script by hand.
 */
import type { Command, Option } from 'commander';
import { badInput } from '../../errors.js';

interface Node {
  /** Space-joined path of command names below `tessera` ('' for the top). */
  key: string;
  subcommands: Array<{ name: string; description: string }>;
  options: Array<{ flag: string; description: string; takesValue: boolean }>;
}

function walk(cmd: Command, prefix: string[], out: Node[]): void {
  const visible = cmd.commands.filter((c) => c.name() !== 'help');
  const options = cmd.options
    .filter((o: Option) => !o.hidden && o.long)
    .map((o: Option) => ({ flag: o.long as string, description: o.description, takesValue: o.required || o.optional }));
  options.push({ flag: '--help', description: 'show help', takesValue: false });
  out.push({
    key: prefix.join(' '),
    subcommands: visible.map((c) => ({ name: c.name(), description: c.description() })),
    options,
  });
  for (const c of visible) walk(c, [...prefix, c.name()], out);
}

/** Only command names, flags and descriptions go into the scripts; quote them for the shell anyway. */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function bashCompletion(program: Command): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const cases = nodes.map((n) => {
    const subs = n.subcommands.map((s) => s.name).join(' ');
    const opts = n.options.map((o) => o.flag).join(' ');
    const valued = n.options.filter((o) => o.takesValue).map((o) => o.flag).join(' ');
    return `    ${sq(n.key)}) subs=${sq(subs)}; opts=${sq(opts)}; valued=${sq(valued)} ;;`;
  });
  return `# bash completion for tessera; load with: source <(tessera completion bash)
_tessera() {
  local cur prev key="" w i subs opts valued
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command path is every leading word that names a subcommand of the path so far.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    _tessera_node "$key"
    if [[ " $subs " == *" $w "* ]]; then key="\${key:+$key }$w"; fi
  done
  _tessera_node "$key"
  if [[ -n "$prev" && "$prev" == -* && " $valued " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
_tessera_node() {
  subs=""; opts=""; valued=""
  case "$1" in
${cases.join('\n')}
  esac
}
complete -o filenames -F _tessera tessera
`;
}

export function zshCompletion(program: Command): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const esc = (s: string) => s.replace(/:/g, '\\:');
  const cases = nodes.map((n) => {
    const subs = n.subcommands.map((s) => sq(`${esc(s.name)}:${s.description}`)).join(' ');
    const opts = n.options.map((o) => sq(`${esc(o.flag)}:${o.description}`)).join(' ');
    const valued = n.options.filter((o) => o.takesValue).map((o) => o.flag).join(' ');
    return `    ${sq(n.key)}) subs=(${subs}); opts=(${opts}); valued=${sq(valued)} ;;`;
  });
  return `#compdef tessera
# zsh completion for tessera; load with: source <(tessera completion zsh)
# (or save as _tessera in a directory of $fpath)
_tessera_node() {
  subs=(); opts=(); valued=""
  case "$1" in
${cases.join('\n')}
  esac
}
_tessera() {
  local key="" w i valued
  local -a subs opts names
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    [[ "$w" == -* ]] && continue
    _tessera_node "$key"
    names=(\${subs%%:*})
    if (( \${names[(Ie)$w]} )); then key="\${key:+$key }$w"; fi
  done
  _tessera_node "$key"
  local prev="\${words[CURRENT-1]}"
  if [[ "$prev" == -* && " $valued " == *" $prev "* ]]; then
    _files
  elif [[ "\${words[CURRENT]}" == -* ]]; then
    _describe -t options 'option' opts
  elif (( \${#subs} )); then
    _describe -t commands 'command' subs
  else
    _files
  fi
}
if (( $+functions[compdef] )); then compdef _tessera tessera; fi
`;
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script for bash or zsh')
    .argument('<shell>', 'bash or zsh')
    .option('--json', 'print {shell, script} as JSON')
    .addHelpText('after', '\nExamples:\n  source <(tessera completion bash)                     # this shell\n  tessera completion bash > /etc/bash_completion.d/tessera\n  tessera completion zsh > "${fpath[1]}/_tessera"')
    .action((shell: string, flags: { json?: boolean }) => {
      if (shell !== 'bash' && shell !== 'zsh') throw badInput(`no completion for shell '${shell}': choose bash or zsh`);
      const script = shell === 'bash' ? bashCompletion(program) : zshCompletion(program);
      process.stdout.write(flags.json ? JSON.stringify({ shell, script }) + '\n' : script);
    });
}
