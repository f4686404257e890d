/**
 * S3 access keys: id → name, sealed secret, creation time and the buckets the key is scoped to
 * (null: every bucket). The tables are encrypted at rest and their entries MAC'd; the secret is
 * sealed once more (AES-256-GCM under a key derived from the data key, bound to the key id), so
 * no listing, dump or replica transfer of the table carries it in the clear.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { badInput, TesseraError } from '../errors.js';
import { checkBucketName, decodeRecord, MAX_BUCKET_NAME_CHARS } from './records.js';
import { Encoder } from 'cbor-x';
import type { TableService } from './table-service.js';

export const ACCESS_KEY_TABLE = 's3-key';
/** Every key shares one partition, so listing keys is one ordered scan. */
export const ACCESS_KEY_PARTITION = 'keys';
export const ACCESS_KEY_ID_CHARS = 20;
export const SECRET_KEY_CHARS = 40;
export const MAX_ACCESS_KEY_NAME_CHARS = 128;
/** Buckets one key may be scoped to. */
export const MAX_KEY_BUCKETS = 100;
/** Keys listed per page. */
export const MAX_ACCESS_KEYS_LISTED = 1000;
export const ACCESS_KEY_PERMISSIONS = ['read', 'write', 'owner'] as const;
export type AccessKeyPermission = (typeof ACCESS_KEY_PERMISSIONS)[number];

const ACCESS_KEY_ID_RE = /^TK[A-Z2-7]{18}$/;
const SEAL_INFO = 'tessera/v1/s3-secret-seal';

export interface AccessKeyRecord {
  readonly name: string;
  readonly createdAt: number;
  /** iv ‖ ciphertext ‖ tag, base64. */
  readonly sealedSecret: string;
  readonly buckets: Readonly<Record<string, readonly AccessKeyPermission[]>> | null;
}

/** What `key ls` shows: never the secret. */
export interface AccessKeyView {
  readonly accessKeyId: string;
  readonly name: string;
  readonly createdAt: number;
  readonly buckets: Readonly<Record<string, readonly AccessKeyPermission[]>> | null;
}

const recordSchema = z
  .object({
    name: z.string().max(MAX_ACCESS_KEY_NAME_CHARS),
    createdAt: z.number().int().min(0),
    sealedSecret: z.string().max(256),
    buckets: z
      .record(z.string().max(MAX_BUCKET_NAME_CHARS), z.array(z.enum(ACCESS_KEY_PERMISSIONS)).max(3))
      .refine((m) => Object.keys(m).length <= MAX_KEY_BUCKETS, `at most ${MAX_KEY_BUCKETS} buckets`)
      .nullable(),
  })
  .strict();

function checkRecord(v: unknown): AccessKeyRecord {
  const r = recordSchema.safeParse(v);
  if (!r.success) throw badInput(`access key record: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data as AccessKeyRecord;
}

export function isAccessKeyId(s: string): boolean {
  return ACCESS_KEY_ID_RE.test(s);
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function newAccessKeyId(): string {
  const b = randomBytes(18);
  return 'TK' + [...b].map((x) => BASE32[x & 31]).join('');
}

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });

export class AccessKeyTable {
  private readonly sealKey: Buffer;

  constructor(private readonly tables: TableService, dataKey: Uint8Array) {
    this.sealKey = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), SEAL_INFO, 32));
  }

  private seal(id: string, secret: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.sealKey, iv);
    c.setAAD(Buffer.from(id));
    const ct = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
    return Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
  }

  private unseal(id: string, sealed: string): string {
    const b = Buffer.from(sealed, 'base64');
    if (b.length < 12 + 16) throw new TesseraError('CORRUPT', `access key ${id}'s sealed secret is truncated`);
    const d = createDecipheriv('aes-256-gcm', this.sealKey, b.subarray(0, 12));
    d.setAAD(Buffer.from(id));
    d.setAuthTag(b.subarray(b.length - 16));
    try {
      return Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]).toString('utf8');
    } catch {
      throw new TesseraError('CORRUPT', `access key ${id}'s secret does not unseal: the record was altered or sealed under another data key`);
    }
  }

  /** Makes a key; the secret is returned once, here, and never shown again. */
  async create(opts: { name?: string; buckets?: Record<string, AccessKeyPermission[]> | null }, now = Date.now()): Promise<AccessKeyView & { secretKey: string }> {
    const name = opts.name ?? '';
    if (name.length > MAX_ACCESS_KEY_NAME_CHARS) throw badInput(`key name of ${name.length} characters is over ${MAX_ACCESS_KEY_NAME_CHARS}`);
    const buckets = opts.buckets ?? null;
    if (buckets !== null) {
      const names = Object.keys(buckets);
      if (names.length === 0 || names.length > MAX_KEY_BUCKETS) throw badInput(`a scoped key names 1 to ${MAX_KEY_BUCKETS} buckets`);
      for (const b of names) {
        checkBucketName(b);
        const perms = buckets[b]!;
        if (perms.length === 0 || perms.some((p) => !ACCESS_KEY_PERMISSIONS.includes(p))) throw badInput(`bucket '${b}': give one or more of --read, --write, --owner`);
      }
    }
    const accessKeyId = newAccessKeyId();
    const secretKey = randomBytes(30).toString('base64url');
    const rec = checkRecord({ name, createdAt: now, sealedSecret: this.seal(accessKeyId, secretKey), buckets });
    await this.tables.put({ table: ACCESS_KEY_TABLE, pk: ACCESS_KEY_PARTITION, sk: accessKeyId }, Buffer.from(encoder.encode(rec)));
    return { accessKeyId, name, createdAt: now, buckets, secretKey };
  }

  /** The key and its secret, or null when there is no such key. */
  async get(accessKeyId: string): Promise<(AccessKeyView & { secretKey: string }) | null> {
    if (!isAccessKeyId(accessKeyId)) return null;
    const e = await this.tables.get({ table: ACCESS_KEY_TABLE, pk: ACCESS_KEY_PARTITION, sk: accessKeyId });
    if (e === null || e.value === null) return null;
    const r = decodeRecord(e.value, checkRecord, `access key record '${accessKeyId}'`);
    return { accessKeyId, name: r.name, createdAt: r.createdAt, buckets: r.buckets, secretKey: this.unseal(accessKeyId, r.sealedSecret) };
  }

  async list(opts: { limit?: number; token?: string } = {}): Promise<{ items: AccessKeyView[]; token: string | null }> {
    const page = await this.tables.list(ACCESS_KEY_TABLE, ACCESS_KEY_PARTITION, { limit: Math.min(opts.limit ?? MAX_ACCESS_KEYS_LISTED, MAX_ACCESS_KEYS_LISTED), ...(opts.token ? { token: opts.token } : {}) });
    return {
      items: page.entries.map((e) => {
        const r = decodeRecord(e.value!, checkRecord, `access key record '${e.sk}'`);
        return { accessKeyId: e.sk, name: r.name, createdAt: r.createdAt, buckets: r.buckets };
      }),
      token: page.token,
    };
  }

  async remove(accessKeyId: string): Promise<boolean> {
    const existed = (await this.get(accessKeyId)) !== null;
    if (existed) await this.tables.put({ table: ACCESS_KEY_TABLE, pk: ACCESS_KEY_PARTITION, sk: accessKeyId }, null);
    return existed;
  }
}
