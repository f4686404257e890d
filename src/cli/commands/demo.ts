/** `tessera demo`: its options and help; the demo itself (demo-run.ts) is loaded when it runs. */
import type { Command } from 'commander';
import type { DemoFlags } from './demo-run.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('start a local multi-process cluster, store a file and read it back, print the figures, and stop')
    .option('--nodes <n>', 'number of node processes', '3')
    .option('--size <size>', 'size of the random file stored and read back, e.g. 4M or 1G', '64M')
    .option('--keep', 'leave the cluster running and print how to use it')
    .option('--json', 'print the figures as JSON')
    .addHelpText('after', '\nExamples:\n  tessera demo\n  tessera demo --nodes 5 --size 256M --keep')
    .action(async (flags: DemoFlags) => (await import('./demo-run.js')).runDemo(flags));
}
