#!/usr/bin/env node
/**
 * The `tessera` command. Each subcommand lives in commands/; this file wires them into
 * commander and turns every failure into one line on stderr and a meaningful exit code.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, TesseraError } from '../errors.js';
import { registerInit } from './commands/init.js';
import { registerNode } from './commands/node.js';
import { registerPeers } from './commands/peers.js';
import { registerDemo } from './commands/demo.js';
import { registerVolume } from './commands/volume.js';
import { registerNbd } from './commands/nbd.js';
import { registerFiles } from './commands/files.js';
import { VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command('tessera')
    .description('distributed, content-addressed, encrypted storage')
    .version(VERSION)
    .showSuggestionAfterError(true)
    .exitOverride();
  registerInit(program);
  registerNode(program);
  registerPeers(program);
  registerFiles(program);
  registerDemo(program);
  registerVolume(program);
  registerNbd(program);
  return program;
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
