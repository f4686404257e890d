/**
 * File commands: put, get, rm, ls, stat. This module only declares them; each command's code is
 * imported when it runs, so `--help` and the other commands do not pay for loading it.
 */
import type { Command } from 'commander';
import { MAX_REPLICAS } from '../../limits.js';
import type { GetFlags } from './get.js';
import type { PutFlags } from './put.js';
import type { CommonFlags } from './transfer.js';
import type { LsFlags } from './file-info.js';
import { withClientOptions } from './peers.js';

export function registerFiles(program: Command): void {
  withClientOptions(
    program
      .command('put')
      .description("store a file in the cluster and print its id (whoever holds the id can read the file)")
      .argument('<file>', "the file to store, or '-' for standard input"),
  )
    .option('--name <name>', "also record the file under this name, a key of the bucket 'default' (without one it is reachable only by its id)")
    .option('--replicas <r>', `copies of every chunk, 1 to ${MAX_REPLICAS} (default 3)`)
    .option('--quorum <w>', 'copies that must be durable before put succeeds (default: a majority of the replicas)')
    .option('--chunk-size <size>', 'chunk size, e.g. 256K or 4M (default 1M)')
    .option('--ec <k+m>', 'erasure coding instead of copies: k data and m parity shards per chunk on k+m nodes, e.g. 4+2')
    .option('-q, --quiet', 'no progress bar')
    .addHelpText(
      'after',
      '\nExamples:\n  tessera put ./photo.jpg --name photos/2024/beach.jpg\n  tar -c ./project | tessera put - --name project.tar --replicas 2',
    )
    .action(async (file: string, flags: PutFlags) => (await import('./put.js')).putCommand(file, flags));

  withClientOptions(
    program
      .command('get')
      .description('read a file by id or name; to standard output unless -o is given')
      .argument('<ref>', 'file id (tsr1…) or name'),
  )
    .option('-o, --output <file>', 'write here; the file appears only once it is complete')
    .option('--range <A-B>', 'only bytes A to B (both included); also A- (from A) and -N (the last N bytes)')
    .option('--streams <n>', 'fetch a file over 32 MiB as this many byte ranges at once, 1 to 4 (default 1: one request)')
    .option('-q, --quiet', 'no progress bar')
    .addHelpText(
      'after',
      '\nExamples:\n  tessera get photos/2024/beach.jpg -o beach.jpg\n  tessera get tsr1… --range 0-1023 | xxd | head\n  tessera get logs.tar --range -4096 > tail.bin',
    )
    .action(async (ref: string, flags: GetFlags) => (await import('./get.js')).getCommand(ref, flags));

  withClientOptions(program.command('rm').description('delete a name and its file (or, by id, a file and every name that points at it)').argument('<ref>', 'file id or name'))
    .addHelpText('after', '\nExample:\n  tessera rm photos/2024/beach.jpg')
    .action(async (ref: string, flags: CommonFlags) => (await import('./file-info.js')).rmCommand(ref, flags));

  withClientOptions(
    program
      .command('ls')
      .description('list named files in name order, one page at a time: name, size, date, ETag (MD5), id')
      .argument('[prefix]', 'only names that start with this'),
  )
    .option('--limit <n>', 'names per page, 1 to 1000 (default 1000)')
    .option('--after <name>', 'start after this name (the last one of the page before)')
    .addHelpText('after', '\nExamples:\n  tessera ls\n  tessera ls photos/2024/ --limit 100\n  tessera ls photos/2024/ --limit 100 --after photos/2024/beach.jpg')
    .action(async (prefix: string | undefined, flags: LsFlags) => (await import('./file-info.js')).lsCommand(prefix, flags));

  withClientOptions(
    program
      .command('stat')
      .description("a file's chunks, policy and health: which nodes hold each chunk")
      .argument('<ref>', 'file id or name'),
  )
    .addHelpText('after', '\nExample:\n  tessera stat photos/2024/beach.jpg --json')
    .action(async (ref: string, flags: CommonFlags) => (await import('./file-info.js')).statCommand(ref, flags));
}
