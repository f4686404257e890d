/** `tessera drain [NODE]`: move a node's data to the others before it leaves the cluster. */
import type { Command } from 'commander';
import { TesseraError } from '../../errors.js';
import type { DrainStateView } from '../../api/index.js';
import { clientFrom, type ClientFlags } from '../context.js';
import { formatBytes } from '../format.js';
import { withClientOptions } from './peers.js';

/** How often --wait asks, and for how long at most. */
const DRAIN_POLL_MS = 1_000;
const MAX_DRAIN_WAIT_MS = 7 * 24 * 3600_000;

function describe(s: DrainStateView): string {
  const who = s.nodeId.slice(0, 12);
  if (!s.draining) return `${who}: not draining (${s.chunksLeft} chunks, ${formatBytes(s.bytesLeft)} here)`;
  if (s.safeToStop) return `${who}: drained; safe to stop`;
  return `${who}: draining, ${s.chunksLeft} chunks (${formatBytes(s.bytesLeft)}) still here`;
}

export function registerDrain(program: Command): void {
  withClientOptions(
    program
      .command('drain')
      .description('move every chunk off a node (the API node by default) so it can be stopped without losing redundancy')
      .argument('[node]', 'node id or unique prefix (see tessera peers)'),
  )
    .option('--wait', 'wait until the node reports it is safe to stop')
    .option('--status', 'only show the drain state')
    .option('--cancel', 'stop draining; the node takes new data again')
    .option('--timeout <seconds>', 'with --wait: give up after this long (exit 8)')
    .addHelpText('after', '\nExamples:\n  tessera drain 3f2a9c01 --wait --api 127.0.0.1:7401\n  tessera drain --status --data ./n4')
    .action(async (node: string | undefined, opts: ClientFlags & { json?: boolean; wait?: boolean; status?: boolean; cancel?: boolean; timeout?: string }) => {
      const client = await clientFrom(opts);
      let s = opts.status ? await client.drainState(node) : await client.drain(node, { cancel: opts.cancel === true });
      const limit = opts.timeout !== undefined ? Number(opts.timeout) * 1000 : MAX_DRAIN_WAIT_MS;
      if (!Number.isFinite(limit) || limit <= 0) throw new TesseraError('BAD_INPUT', '--timeout must be a positive number of seconds');
      const deadline = Date.now() + Math.min(limit, MAX_DRAIN_WAIT_MS);
      while (opts.wait && s.draining && !s.safeToStop) {
        if (Date.now() > deadline) throw new TesseraError('TIMEOUT', `${describe(s)}; gave up waiting (run again with --wait to keep waiting)`);
        if (!opts.json && process.stderr.isTTY) process.stderr.write(`\r${describe(s)}   `);
        await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
        s = await client.drainState(s.nodeId);
      }
      if (!opts.json && process.stderr.isTTY && opts.wait) process.stderr.write('\n');
      process.stdout.write((opts.json ? JSON.stringify(s) : describe(s)) + '\n');
    });
}
