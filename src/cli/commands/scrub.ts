/** `tessera scrub`: re-verify every chunk a node stores, and repair the bad ones, now. */
import type { Command } from 'commander';
import { clientFrom, type ClientFlags } from '../context.js';
import { formatBytes } from '../format.js';
import { withClientOptions } from './peers.js';

export function registerScrub(program: Command): void {
  withClientOptions(program.command('scrub').description("re-verify every chunk a node stores against its id; bad copies are quarantined and restored from other holders"))
    .option('--now', 'run a pass now and wait for its report (without it: show the background scrub state)')
    .addHelpText('after', '\nExamples:\n  tessera scrub --now --data ./n1\n  tessera scrub --api 127.0.0.1:7411 --json')
    .action(async (opts: ClientFlags & { json?: boolean; now?: boolean }) => {
      const client = await clientFrom(opts);
      if (!opts.now) {
        const s = await client.json<unknown>('/api/v1/scrub');
        process.stdout.write(JSON.stringify(s, null, opts.json ? undefined : 2) + '\n');
        return;
      }
      const r = await client.scrub();
      if (opts.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write(
          `checked ${r.checked} chunks (${formatBytes(r.bytes)}) in ${(r.durationMs / 1000).toFixed(1)} s: ${r.bad} bad, ${r.repaired} repaired, ${r.unrepaired} not repaired yet\n` +
            r.badIds.map((id) => `  bad: ${id}\n`).join(''),
        );
      }
      // Damage that could not be repaired yet is worth a non-zero status for scripts.
      if (r.unrepaired > 0) process.exitCode = 5;
    });
}
