/**
 * Which bucket and key a request names: virtual-host style (`BUCKET.DOMAIN/KEY`, when the node
 * serves `--s3-domain DOMAIN`) or path style (`/BUCKET/KEY`). Pure.
 */
import { S3Error } from './errors.js';
import type { S3Target } from './handler.js';

export interface S3Address {
  bucket: string | undefined;
  key: string | undefined;
  target: S3Target;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error('InvalidArgument', 'the request path is not valid percent-encoding');
  }
}

function hostName(host: string | undefined): string {
  if (host === undefined) return '';
  const h = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return h.toLowerCase();
}

export function addressOf(rawPath: string, host: string | undefined, domain: string | undefined): S3Address {
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidRequest', 'the request path must start with /');
  const name = hostName(host);
  const d = domain?.toLowerCase();
  if (d !== undefined && name.endsWith(`.${d}`)) {
    const bucket = name.slice(0, -(d.length + 1));
    const key = rawPath.length > 1 ? decode(rawPath.slice(1)) : undefined;
    return { bucket, key, target: key === undefined ? 'bucket' : 'object' };
  }
  const rest = rawPath.slice(1);
  if (rest === '') return { bucket: undefined, key: undefined, target: 'service' };
  const slash = rest.indexOf('/');
  if (slash < 0 || slash === rest.length - 1) return { bucket: decode(slash < 0 ? rest : rest.slice(0, slash)), key: undefined, target: 'bucket' };
  return { bucket: decode(rest.slice(0, slash)), key: decode(rest.slice(slash + 1)), target: 'object' };
}
