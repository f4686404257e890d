#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=134217728 MALLOC_TRIM_THRESHOLD_=1073741824 node --initial-old-space-size=64 --no-memory-reducer --max-semi-space-size=4 --heap-growing-percent=50
/**
 * The `tessera` command. Each subcommand lives in commands/; this file wires them into
 * commander and turns every failure into one line on stderr and a meaningful exit code.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { EXIT_CODES, TesseraError } from '../errors.js';
import { registerInit } from './commands/init.js';
import { registerNode } from './commands/node.js';
import { registerDashboard } from './commands/dashboard.js';
import { registerCompletion } from './commands/completion.js';
import { registerPeers } from './commands/peers.js';
import { registerDemo } from './commands/demo.js';
import { registerVolume } from './commands/volume.js';
import { registerNbd } from './commands/nbd.js';
import { registerFiles } from './commands/files.js';
import { registerScrub } from './commands/scrub.js';
import { registerDrain } from './commands/drain.js';
import { registerS3 } from './commands/s3.js';
import { VERSION } from '../version.js';

// Imported as an ES module, node:fs makes all its exports at once, its stream classes among
// them, which loads Node's stream modules; require() leaves those until they are used.
const { fstatSync, statSync, writeSync } = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');

/**
 * Whether descriptor 1 may be a terminal, told without process.stdout or node:tty (each loads
 * Node's stream modules): a character device other than /dev/null. Only then does the help ask
 * process.stdout for the terminal's width and colours.
 */
function stdoutMayBeTerminal(): boolean {
  try {
    const st = fstatSync(1);
    return st.isCharacterDevice() && st.rdev !== statSync('/dev/null').rdev;
  } catch {
    return false;
  }
}

/**
 * Writes commander's own output (help, version) straight to descriptor 1. process.stdout is a
 * stream, and making it loads Node's stream modules: about a third of what `tessera --version`
 * cost after Node itself had started. A reader that went away ends the output quietly; a
 * non-blocking descriptor that is full gets the rest through process.stdout.
 */
function writeOut(text: string): void {
  let rest = Buffer.from(text);
  try {
    while (rest.length > 0) rest = rest.subarray(writeSync(1, rest));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') return;
    if (code === 'EAGAIN') process.stdout.write(rest);
    else throw err;
  }
}

export function buildProgram(): Command {
  const program = new Command('tessera');
  const output = program.configureOutput();
  program
    .description('distributed, content-addressed, encrypted storage')
    // Before the commands are declared: each copies its parent's output settings. tessera's help
    // has no colours of its own, so off a terminal there are none to keep.
    .configureOutput({
      writeOut,
      // 80 columns is commander's own width when it is told none.
      getOutHelpWidth: () => (stdoutMayBeTerminal() ? (output.getOutHelpWidth?.() ?? 80) : 80),
      getOutHasColors: () => stdoutMayBeTerminal() && output.getOutHasColors?.() === true,
    })
    .version(VERSION)
    .showSuggestionAfterError(true)
    .exitOverride()
    // A reader that goes away (`tessera ls | head`) is a normal end, not a crash. Set when a
    // command runs rather than at start, so help and version never make process.stdout.
    .hook('preAction', () => {
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') process.exit(0);
      });
    });
  registerInit(program);
  registerNode(program);
  registerPeers(program);
  registerFiles(program);
  registerScrub(program);
  registerDrain(program);
  registerS3(program);
  registerDemo(program);
  registerVolume(program);
  registerNbd(program);
  registerDashboard(program);
  // Last, so the scripts it prints know every other command.
  registerCompletion(program);
  addMissingExamples(program);
  return program;
}

/** Examples for commands registered without one; a command's own example always wins. */
const EXAMPLES: Record<string, string> = {
  token: 'tessera token --data ./n1 --storage-only',
  volume: 'tessera volume create disk1 --size 10G --layout raid5 --members 4',
  'volume ls': 'tessera volume ls --api 127.0.0.1:7401 --json',
  'volume info': 'tessera volume info disk1 --api 127.0.0.1:7421',
  'volume rm': 'tessera volume rm disk1',
  'volume replace': 'tessera volume replace disk1 3f2a9c01b2e4 77d0e1aa5c9f --api 127.0.0.1:7421',
  'volume check': 'tessera volume check disk1 --repair --api 127.0.0.1:7421',
};

function addMissingExamples(cmd: Command, path: string[] = []): void {
  for (const sub of cmd.commands) {
    const key = [...path, sub.name()].join(' ');
    const example = EXAMPLES[key];
    if (example && (sub as unknown as NodeJS.EventEmitter).listenerCount('afterHelp') === 0) sub.addHelpText('after', `\nExample:\n  ${example}`);
    addMissingExamples(sub, [...path, sub.name()]);
  }
}

export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander has already printed its message; help and version are not failures.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    return 2;
  }
  if (err instanceof TesseraError) {
    process.stderr.write(`tessera: ${err.message}\n`);
    return EXIT_CODES[err.code];
  }
  process.stderr.write(`tessera: unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

await main();
