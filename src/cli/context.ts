/** Where a client command finds its node: --api/--token, then --data, then the environment. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TesseraClient } from '../client/index.js';
import { API_TOKEN_FILE } from '../cluster/data-files.js';
import { RUNTIME_FILE } from '../runtime-file.js';

export interface ClientFlags {
  api?: string;
  token?: string;
  data?: string;
}

export async function clientFrom(flags: ClientFlags): Promise<TesseraClient> {
  let api = flags.api;
  let token = flags.token;
  if (flags.data) {
    if (!api) {
      try {
        const info = JSON.parse(await readFile(join(flags.data, RUNTIME_FILE), 'utf8')) as { api?: string };
        api = info.api;
      } catch {
        /* the node is not running, or never ran: fall back to the default address */
      }
    }
    if (!token) {
      try {
        token = (await readFile(join(flags.data, API_TOKEN_FILE), 'utf8')).trim();
      } catch {
        /* no token: the request goes without one and the API says if it needs it */
      }
    }
  }
  // Loaded here rather than at the top: every command registers its options from this module's
  // importers, and only the one that runs needs the HTTP stack.
  const { connect } = await import('../client/index.js');
  return connect({ ...(api ? { api } : {}), ...(token ? { token } : {}) });
}
