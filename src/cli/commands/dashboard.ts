/** `tessera dashboard`: the address of a local node's web dashboard. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { API_TOKEN_FILE } from '../../cluster/data-files.js';
import { TesseraError } from '../../errors.js';
import { RUNTIME_FILE } from '../../runtime-file.js';

/** The dashboard address with the token in its fragment: browsers never send a fragment to a server. */
async function dashboardUrl(dataDir: string): Promise<{ url: string; api: string }> {
  let api: string;
  let scheme = 'http';
  try {
    const info = JSON.parse(await readFile(join(dataDir, RUNTIME_FILE), 'utf8')) as { api: string; apiScheme?: string };
    api = info.api;
    if (info.apiScheme === 'https') scheme = 'https';
  } catch {
    throw new TesseraError('UNAVAILABLE', `no node is running with data directory ${dataDir}; start it with \`tessera node --data ${dataDir}\``);
  }
  const token = (await readFile(join(dataDir, API_TOKEN_FILE), 'utf8')).trim();
  // A wildcard bind is reachable on loopback from this machine.
  const local = api.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
  return { url: `${scheme}://${local}/#token=${encodeURIComponent(token)}`, api: local };
}

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description("print the address of a local node's web dashboard, with its API token in the fragment")
    .requiredOption('--data <dir>', 'data directory of a running node')
    .option('--json', 'print {url, api} as JSON')
    .addHelpText('after', '\nThe token after # stays in the browser (saved in the page), it is never sent in a request line.\n\nExample:\n  tessera dashboard --data ./n1     # then open the printed address')
    .action(async (flags: { data: string; json?: boolean }) => {
      const d = await dashboardUrl(flags.data);
      process.stdout.write((flags.json ? JSON.stringify(d) : d.url) + '\n');
    });
}
