/**
 * Access keys as the S3 face sees them: looked up by id (cached for a few seconds, so a burst
 * of requests is not a quorum read each) and turned into what the key may do.
 */
import type { S3Access, S3Principal } from './handler.js';

/** A removed or changed key stops working within this long on every node. */
export const KEY_CACHE_TTL_MS = 5_000;
export const MAX_CACHED_KEYS = 1024;

export interface StoredKey {
  accessKeyId: string;
  name: string;
  secretKey: string;
  buckets: Readonly<Record<string, readonly string[]>> | null;
}

export function principalOf(k: StoredKey): S3Principal {
  if (k.buckets === null) return { accessKeyId: k.accessKeyId, name: k.name, buckets: null };
  const m = new Map<string, Set<Exclude<S3Access, 'none'>>>();
  for (const [b, perms] of Object.entries(k.buckets)) {
    const s = new Set<Exclude<S3Access, 'none'>>();
    for (const p of perms) if (p === 'read' || p === 'write' || p === 'owner') s.add(p);
    // An owner may read and write the bucket too.
    if (s.has('owner')) {
      s.add('read');
      s.add('write');
    }
    m.set(b, s);
  }
  return { accessKeyId: k.accessKeyId, name: k.name, buckets: m };
}

export function principalMay(p: S3Principal, bucket: string, access: Exclude<S3Access, 'none'>): boolean {
  return p.buckets === null || (p.buckets.get(bucket)?.has(access) ?? false);
}

export class KeyCache {
  private readonly cache = new Map<string, { at: number; key: StoredKey | null }>();
  constructor(private readonly load: (id: string) => Promise<StoredKey | null>, private readonly now: () => number = Date.now) {}

  async get(id: string): Promise<StoredKey | null> {
    const hit = this.cache.get(id);
    if (hit && this.now() - hit.at < KEY_CACHE_TTL_MS) return hit.key;
    const key = await this.load(id);
    // Unknown ids are not cached: anyone can send any id, and must not push real keys out.
    if (key === null) {
      this.cache.delete(id);
      return null;
    }
    if (this.cache.size >= MAX_CACHED_KEYS) this.cache.delete(this.cache.keys().next().value!);
    this.cache.delete(id);
    this.cache.set(id, { at: this.now(), key });
    return key;
  }
}
