/**
 * Small objects stored inline in their table entries, against real node processes (three full
 * disk nodes, R = 3, and one storage-only node) and aws-cli: objects one byte below and one
 * above the inline threshold behave alike for put, get, range, head, copy, list and delete, with
 * the same kind of ETag; a name in the default bucket written through S3 reads with the native
 * `tessera get/stat/ls`; no data directory holds an inline object's plaintext; and the object
 * stays readable with one of its entry's holders killed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH } from '../../src/cli/local-cluster.js';
import { parseJoinToken } from '../../src/cluster/identity.js';
import { INLINE_FILE_ID, MAX_INLINE_OBJECT_BYTES } from '../../src/content/index.js';
import { awsEnv, mustRun, startS3Cluster } from '../helpers/s3-cluster.js';

const AWS = '/usr/bin/aws';
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
const MARKER_BYTES = 32;
/** Files one data directory scan reads at most, so a runaway directory cannot stall the test. */
const MAX_SCANNED_FILES = 20_000;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** A body of `size` random bytes that begins with, and also holds in its middle, a 32-byte marker. */
function body(size: number): { data: Buffer; marker: Buffer } {
  const marker = randomBytes(MARKER_BYTES);
  const data = randomBytes(size);
  marker.copy(data, 0);
  marker.copy(data, Math.floor(size / 2));
  return { data, marker };
}

/** Every regular file under `dir` whose bytes contain `needle`. */
async function filesHolding(dir: string, needle: Buffer, budget = { files: MAX_SCANNED_FILES }): Promise<string[]> {
  const hits: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) hits.push(...(await filesHolding(p, needle, budget)));
    else if (e.isFile()) {
      if (--budget.files < 0) throw new Error(`more than ${MAX_SCANNED_FILES} files under the data directories`);
      if ((await readFile(p)).includes(needle)) hits.push(p);
    }
  }
  return hits;
}

test('inline objects through aws-cli and the native CLI: same behaviour as files, no plaintext on disk, readable with a holder down', { skip: existsSync(AWS) ? false : 'not installed: aws (apt-get install awscli)', timeout: 600_000 }, async (t) => {
  const s3 = await startS3Cluster({ nodes: 3, nodeArgs: TIMING });
  const work = await mkdtemp(join(tmpdir(), 'tessera-s3-inline-'));
  t.after(async () => {
    await s3.destroy();
    await rm(work, { recursive: true, force: true });
  });
  const n0 = s3.cluster.node(0);
  // A storage-only member: it holds chunks but must never see a table entry.
  const token = spawnSync(process.execPath, [CLI_PATH, 'token', '--data', n0.dataDir, '--storage-only'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TESSERA_API: '' } });
  assert.equal(token.status, 0, token.stderr);
  await s3.cluster.addNode({ keys: parseJoinToken(token.stdout.trim()), args: TIMING });
  await s3.cluster.waitForMembers({ alive: 4 }, 30_000);

  const key = await s3.createKey('inline');
  const env = awsEnv(key, work);
  await writeFile(env.AWS_CONFIG_FILE!, '[default]\nregion = us-east-1\n');
  const aws = async (...a: string[]) => (await mustRun(AWS, ['--endpoint-url', s3.endpoint, ...a], { env, timeoutMs: 120_000 })).stdout;
  const api = async (...a: string[]) => JSON.parse(await aws('s3api', ...a)) as Record<string, unknown>;
  const tessera = async (...a: string[]) => (await mustRun(process.execPath, [CLI_PATH, ...a, '--api', n0.api, '--data', n0.dataDir], { timeoutMs: 60_000 })).stdout;

  await aws('s3', 'mb', 's3://inl');
  const below = body(MAX_INLINE_OBJECT_BYTES);
  const above = body(MAX_INLINE_OBJECT_BYTES + 1);
  for (const [name, b] of [['below', below], ['above', above]] as const) {
    await writeFile(join(work, name), b.data);
    const put = await api('put-object', '--bucket', 'inl', '--key', `k/${name}`, '--body', join(work, name), '--content-type', 'text/x-test', '--metadata', 'who=ana');
    assert.equal(put.ETag, `"${md5(b.data)}"`, `${name}: the ETag is the MD5 of the bytes`);
    const got = join(work, `${name}.got`);
    const head = await api('get-object', '--bucket', 'inl', '--key', `k/${name}`, got);
    assert.equal(head.ContentLength, b.data.length);
    assert.equal(head.ETag, `"${md5(b.data)}"`);
    assert.equal(head.ContentType, 'text/x-test');
    assert.deepEqual(head.Metadata, { who: 'ana' });
    assert.ok((await readFile(got)).equals(b.data), `${name}: GET returns the bytes`);
    await api('get-object', '--bucket', 'inl', '--key', `k/${name}`, '--range', 'bytes=100-4199', got);
    assert.ok((await readFile(got)).equals(b.data.subarray(100, 4200)), `${name}: a range returns its bytes`);
    await api('get-object', '--bucket', 'inl', '--key', `k/${name}`, '--range', `bytes=-10`, got);
    assert.ok((await readFile(got)).equals(b.data.subarray(b.data.length - 10)), `${name}: a suffix range`);
    const cond = await mustRun(AWS, ['--endpoint-url', s3.endpoint, 's3api', 'get-object', '--bucket', 'inl', '--key', `k/${name}`, '--if-none-match', `"${md5(b.data)}"`, got], { env }).catch((e: Error) => e);
    assert.match(String(cond instanceof Error ? cond.message : ''), /304|Not Modified/, `${name}: If-None-Match with the ETag is 304`);
    const copy = await api('copy-object', '--bucket', 'inl', '--key', `copy/${name}`, '--copy-source', `inl/k/${name}`);
    assert.equal((copy.CopyObjectResult as { ETag: string }).ETag, `"${md5(b.data)}"`);
  }
  // The copies stay readable once their sources are gone.
  for (const name of ['below', 'above']) await aws('s3api', 'delete-object', '--bucket', 'inl', '--key', `k/${name}`);
  for (const [name, b] of [['below', below], ['above', above]] as const) {
    const got = join(work, `${name}.copy`);
    await api('get-object', '--bucket', 'inl', '--key', `copy/${name}`, got);
    assert.ok((await readFile(got)).equals(b.data), `${name}: the copy reads back`);
  }
  const listed = (await api('list-objects-v2', '--bucket', 'inl')).Contents as Array<{ Key: string; Size: number; ETag: string }>;
  assert.deepEqual(listed.map((o) => [o.Key, o.Size, o.ETag]), [['copy/above', above.data.length, `"${md5(above.data)}"`], ['copy/below', below.data.length, `"${md5(below.data)}"`]]);

  // An S3 object in the default bucket is a name: the native CLI reads, stats and lists it.
  const tiny = body(200);
  await writeFile(join(work, 'tiny'), tiny.data);
  await aws('s3', 'cp', join(work, 'tiny'), 's3://default/tiny.bin');
  await tessera('get', 'tiny.bin', '-q', '-o', join(work, 'tiny.native'));
  assert.ok((await readFile(join(work, 'tiny.native'))).equals(tiny.data));
  const stat = JSON.parse(await tessera('stat', 'tiny.bin', '--json')) as { fileId: string; size: number; chunks: number; policy: string; name: string };
  assert.deepEqual([stat.fileId, stat.size, stat.chunks, stat.policy, stat.name], [INLINE_FILE_ID, 200, 0, 'inline', 'tiny.bin']);
  const names = JSON.parse(await tessera('ls', '--json')) as Array<{ name: string; size: number; etag: string }>;
  assert.deepEqual(names.map((f) => [f.name, f.size, f.etag]), [['tiny.bin', 200, md5(tiny.data)]]);

  // No data directory, the storage-only node's included, holds an inline object's plaintext
  // (nor a chunked one's). The scan does find a marker where one lies in plain bytes.
  assert.ok((await filesHolding(work, below.marker)).length > 0, 'the scan finds a plaintext marker');
  for (const n of s3.cluster.nodes) {
    for (const [what, m] of [['inline', below.marker], ['chunked', above.marker], ['named inline', tiny.marker]] as const) {
      assert.deepEqual(await filesHolding(n.dataDir, m), [], `node ${n.index}: the ${what} object's plaintext is on disk`);
    }
  }

  // Every full node holds the entry (R = 3); with one killed the quorum still answers.
  await s3.cluster.kill(2);
  const got = join(work, 'after-kill');
  await api('get-object', '--bucket', 'inl', '--key', 'copy/below', got);
  assert.ok((await readFile(got)).equals(below.data), 'the inline object reads with a holder down');
  await tessera('get', 'tiny.bin', '-q', '-o', got);
  assert.ok((await readFile(got)).equals(tiny.data));
  // A new inline put and its removal also reach a quorum.
  await aws('s3', 'cp', join(work, 'tiny'), 's3://inl/late');
  await aws('s3', 'rm', 's3://inl/late');
  await aws('s3', 'rm', 's3://inl/copy/below');
  const left = (await api('list-objects-v2', '--bucket', 'inl')).Contents as Array<{ Key: string }>;
  assert.deepEqual(left.map((o) => o.Key), ['copy/above']);
});
