/**
 * `tessera s3 key create|ls|rm`: the access keys S3 clients sign with. They talk to a node's API
 * with its token, as the other admin commands do; the secret is shown once, at creation.
 */
import type { Command } from 'commander';
import { TesseraError } from '../../errors.js';
import { clientFrom, type ClientFlags } from '../context.js';
import { table } from '../format.js';
import { withClientOptions } from './peers.js';

const KEYS_PATH = '/api/v1/s3/keys';

/** What the API answers for a key (the JSON shape of tables' AccessKeyView). */
interface KeyView {
  accessKeyId: string;
  name: string;
  createdAt: number;
  buckets: Record<string, string[]> | null;
}

type CreateFlags = ClientFlags & { json?: boolean; name?: string; bucket?: string[]; read?: boolean; write?: boolean; owner?: boolean };

function scope(k: KeyView): string {
  if (k.buckets === null) return 'all buckets';
  return Object.entries(k.buckets).map(([b, p]) => `${b}:${p.join('+')}`).join(', ');
}

function bucketsFrom(o: CreateFlags): Record<string, string[]> | null {
  const perms = [o.read ? 'read' : '', o.write ? 'write' : '', o.owner ? 'owner' : ''].filter((p) => p !== '');
  if (!o.bucket || o.bucket.length === 0) {
    if (perms.length > 0) throw new TesseraError('BAD_INPUT', '--read, --write and --owner scope a key to buckets: name them with --bucket B');
    return null;
  }
  if (perms.length === 0) throw new TesseraError('BAD_INPUT', 'a key scoped with --bucket needs --read, --write and/or --owner');
  return Object.fromEntries(o.bucket.map((b) => [b, perms]));
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerS3(program: Command): void {
  const s3 = program.command('s3').description('the S3-compatible endpoint (tessera node --s3 HOST:PORT)');
  const key = s3.command('key').description('access keys S3 clients sign requests with');
  withClientOptions(key.command('create').description('make an access key; its secret is printed once'))
    .option('--name <name>', 'a label to recognise the key by')
    .option('--bucket <bucket>', 'scope the key to this bucket (repeat for several); without it the key reaches every bucket and may create buckets', collect)
    .option('--read', 'with --bucket: list and read objects')
    .option('--write', 'with --bucket: put, copy and delete objects')
    .option('--owner', 'with --bucket: everything, including creating and deleting the bucket')
    .addHelpText('after', '\nExamples:\n  tessera s3 key create --name backup --data ./n1\n  tessera s3 key create --bucket photos --read --write --data ./n1')
    .action(async (o: CreateFlags) => {
      const client = await clientFrom(o);
      const k = await client.json<KeyView & { secretKey: string }>(KEYS_PATH, { method: 'POST', body: { ...(o.name ? { name: o.name } : {}), buckets: bucketsFrom(o) } });
      if (o.json) process.stdout.write(JSON.stringify(k) + '\n');
      else process.stdout.write(`access key id      ${k.accessKeyId}\nsecret access key  ${k.secretKey}\nscope              ${scope(k)}\n(the secret is not shown again)\n`);
    });
  withClientOptions(key.command('ls').description('list access keys (never their secrets)')).action(async (o: ClientFlags & { json?: boolean }) => {
    const client = await clientFrom(o);
    const keys: KeyView[] = [];
    let token: string | null = null;
    do {
      const page: { keys: KeyView[]; token: string | null } = await client.json(`${KEYS_PATH}${token ? `?token=${encodeURIComponent(token)}` : ''}`);
      keys.push(...page.keys);
      token = page.token;
    } while (token !== null);
    if (o.json) process.stdout.write(JSON.stringify(keys) + '\n');
    else process.stdout.write(table(['ACCESS KEY', 'NAME', 'CREATED', 'SCOPE'], keys.map((k) => [k.accessKeyId, k.name || '-', new Date(k.createdAt).toISOString().slice(0, 19) + 'Z', scope(k)])) + '\n');
  });
  withClientOptions(key.command('rm').description('remove an access key; it stops working within seconds on every node').argument('<access-key-id>'))
    .action(async (id: string, o: ClientFlags & { json?: boolean }) => {
      const client = await clientFrom(o);
      const r = await client.json<{ removed: string }>(`${KEYS_PATH}/${encodeURIComponent(id)}`, { method: 'DELETE' });
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `removed ${r.removed}\n`);
    });
}
