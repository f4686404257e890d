/** "host:port" addresses, with IPv6 hosts in brackets. */
import { TesseraError } from '../errors.js';

const MAX_ADDR_CHARS = 256;

export function parseAddr(addr: string): { host: string; port: number } {
  if (addr.length > MAX_ADDR_CHARS) throw new TesseraError('BAD_INPUT', `address is longer than ${MAX_ADDR_CHARS} characters`);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new TesseraError('BAD_INPUT', `address ${JSON.stringify(addr)} is not host:port (e.g. 10.0.0.5:7400 or [::1]:7400)`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

export function formatAddr(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
