/**
 * Where a client command finds its node: --api/--token, then --data, then the environment. From
 * a data directory it takes the API's address, its token, and the certificate to pin when the
 * API speaks HTTPS with the self-signed certificate `init` made; the directory's permissions
 * are what keeps other local users out.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiTlsTrust, TesseraClient } from '../client/index.js';
import { API_TOKEN_FILE } from '../cluster/data-files.js';
import { TesseraError } from '../errors.js';
import { RUNTIME_FILE, type RuntimeInfo } from '../runtime-file.js';

/** A certificate (chain) file is a few KiB. */
const MAX_PINNED_CERT_BYTES = 256 << 10;

/** A PEM certificate file to pin, for an HTTPS API reached without --data. */
export const API_CERT_ENV = 'TESSERA_API_CERT';

async function pinnedTrust(certFile: string): Promise<ApiTlsTrust> {
  let pem: string;
  try {
    const b = await readFile(certFile);
    if (b.length > MAX_PINNED_CERT_BYTES) throw new Error(`${b.length} bytes is too large for a certificate`);
    pem = b.toString('utf8');
  } catch (e) {
    throw new TesseraError('NOT_FOUND', `cannot read the API certificate to pin at ${certFile}: ${(e as Error).message}`);
  }
  // node:crypto is a few dozen internal modules; only a pinned certificate needs it.
  const { X509Certificate } = await import('node:crypto');
  try {
    return { certPem: pem, fingerprint256: new X509Certificate(pem).fingerprint256 };
  } catch (e) {
    throw new TesseraError('BAD_INPUT', `${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
}

export interface ClientFlags {
  api?: string;
  token?: string;
  data?: string;
}

export async function clientFrom(flags: ClientFlags): Promise<TesseraClient> {
  let api = flags.api;
  let token = flags.token;
  let tls: ApiTlsTrust | undefined;
  if (flags.data) {
    let info: Partial<RuntimeInfo> | undefined;
    try {
      info = JSON.parse(await readFile(join(flags.data, RUNTIME_FILE), 'utf8')) as Partial<RuntimeInfo>;
    } catch {
      /* the node is not running, or never ran: fall back to the default address */
    }
    if (!api && typeof info?.api === 'string') api = info.api;
    if (info?.apiScheme === 'https' && (flags.api === undefined || flags.api === info.api)) {
      // The self-signed certificate is pinned; an operator's certificate is checked against the system's CAs.
      tls = info.apiTls?.selfSigned === true && typeof info.apiTls.certFile === 'string' ? await pinnedTrust(info.apiTls.certFile) : {};
    }
    if (!token) {
      try {
        token = (await readFile(join(flags.data, API_TOKEN_FILE), 'utf8')).trim();
      } catch {
        /* no token: the request goes without one and the API says if it needs it */
      }
    }
  }
  const certEnv = process.env[API_CERT_ENV];
  if (tls === undefined && certEnv) tls = await pinnedTrust(certEnv);
  // Loaded here rather than at the top: every command registers its options from this module's
  // importers, and only the one that runs needs the HTTP stack.
  const { connect } = await import('../client/index.js');
  return connect({ ...(api ? { api } : {}), ...(token ? { token } : {}), ...(tls ? { tls } : {}) });
}
