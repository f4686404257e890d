/**
 * Real S3 clients from Debian's packages against a cluster of real tessera nodes: aws-cli (s3 and
 * s3api, multipart with parts out of order and one uploaded twice), rclone, restic, s3fs and
 * s3cmd. Each test checks the bytes that come back, not only the exit codes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { awsEnv, mustRun, startS3Cluster, tool, type S3Cluster, type S3Key } from '../helpers/s3-cluster.js';

const AWS = '/usr/bin/aws';
const MiB = 1 << 20;
const TOOL_TIMEOUT_MS = 300_000;

let s3: S3Cluster;
let key: S3Key;
let work: string;

before(async () => {
  s3 = await startS3Cluster({ nodes: 3 });
  key = await s3.createKey('clients');
  work = await mkdtemp(join(tmpdir(), 'tessera-s3-clients-'));
});

after(async () => {
  await s3?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

async function aws(args: string[]): Promise<string> {
  return (await mustRun(AWS, ['--endpoint-url', s3.endpoint, '--no-cli-pager', ...args], { env: awsEnv(key, work), timeoutMs: TOOL_TIMEOUT_MS })).stdout;
}

/** Every file under `dir`, relative path → contents' MD5. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(relative(dir, p), md5(await readFile(p)));
    }
  };
  await walk(dir);
  return out;
}

/** Many small files in nested directories and one large one (over every client's multipart threshold used here). */
async function makeTree(dir: string, small: number, largeBytes: number): Promise<void> {
  for (let i = 0; i < small; i++) {
    const sub = join(dir, `d${i % 7}`, `e${i % 3}`);
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}.txt`), randomBytes(1 + ((i * 997) % 9000)));
  }
  await writeFile(join(dir, 'large.bin'), randomBytes(largeBytes));
}

test('aws-cli s3api: parts uploaded out of order, one twice, complete into the object with the multipart ETag and the right bytes', { timeout: 600_000 }, async () => {
  await aws(['s3api', 'create-bucket', '--bucket', 'mp-api']);
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 123), randomBytes(MiB + 7)];
  const stale = randomBytes(5 * MiB);
  for (const [i, p] of [...parts, stale].entries()) await writeFile(join(work, `part${i}`), p);
  const { UploadId: uploadId } = JSON.parse(await aws(['s3api', 'create-multipart-upload', '--bucket', 'mp-api', '--key', 'dir/object.bin', '--content-type', 'application/x-test'])) as { UploadId: string };
  const put = async (n: number, file: string) => (JSON.parse(await aws(['s3api', 'upload-part', '--bucket', 'mp-api', '--key', 'dir/object.bin', '--upload-id', uploadId, '--part-number', String(n), '--body', join(work, file)])) as { ETag: string }).ETag;
  // Out of order: 3, then 2 (a first version), then 1, then 2 again with the bytes that count.
  const e3 = await put(3, 'part2');
  const staleEtag = await put(2, 'part3');
  const e1 = await put(1, 'part0');
  const e2 = await put(2, 'part1');
  assert.equal(e1, `"${md5(parts[0]!)}"`);
  assert.notEqual(e2, staleEtag);
  const listed = JSON.parse(await aws(['s3api', 'list-parts', '--bucket', 'mp-api', '--key', 'dir/object.bin', '--upload-id', uploadId])) as { Parts: { PartNumber: number; ETag: string; Size: number }[] };
  assert.deepEqual(listed.Parts.map((p) => [p.PartNumber, p.ETag, p.Size]), [[1, e1, parts[0]!.length], [2, e2, parts[1]!.length], [3, e3, parts[2]!.length]]);
  const uploads = JSON.parse(await aws(['s3api', 'list-multipart-uploads', '--bucket', 'mp-api'])) as { Uploads: { UploadId: string }[] };
  assert.deepEqual(uploads.Uploads.map((u) => u.UploadId), [uploadId]);
  const manifest = join(work, 'complete.json');
  await writeFile(manifest, JSON.stringify({ Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }, { PartNumber: 3, ETag: e3 }] }));
  const done = JSON.parse(await aws(['s3api', 'complete-multipart-upload', '--bucket', 'mp-api', '--key', 'dir/object.bin', '--upload-id', uploadId, '--multipart-upload', `file://${manifest}`])) as { ETag: string };
  const expectEtag = createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex') + '-3';
  assert.equal(done.ETag, `"${expectEtag}"`);
  const back = join(work, 'mp-back');
  const got = JSON.parse(await aws(['s3api', 'get-object', '--bucket', 'mp-api', '--key', 'dir/object.bin', back])) as { ETag: string; ContentLength: number; ContentType: string };
  assert.equal(got.ETag, `"${expectEtag}"`);
  assert.equal(got.ContentType, 'application/x-test');
  const whole = Buffer.concat(parts);
  assert.equal(got.ContentLength, whole.length);
  assert.equal(md5(await readFile(back)), md5(whole), "the object's MD5 is that of the parts in order, with the second upload of part 2");
  // A range across the boundary of parts 1 and 2.
  const rangeOut = join(work, 'mp-range');
  await aws(['s3api', 'get-object', '--bucket', 'mp-api', '--key', 'dir/object.bin', '--range', `bytes=${5 * MiB - 10}-${5 * MiB + 9}`, rangeOut]);
  assert.ok((await readFile(rangeOut)).equals(whole.subarray(5 * MiB - 10, 5 * MiB + 10)));
  const afterDone = (await aws(['s3api', 'list-multipart-uploads', '--bucket', 'mp-api'])).trim();
  assert.deepEqual(afterDone === '' ? [] : (JSON.parse(afterDone) as { Uploads?: unknown[] }).Uploads ?? [], [], 'a completed upload is no longer listed');
  // An aborted upload is gone; its id is then unknown.
  const { UploadId: other } = JSON.parse(await aws(['s3api', 'create-multipart-upload', '--bucket', 'mp-api', '--key', 'aborted'])) as { UploadId: string };
  await aws(['s3api', 'upload-part', '--bucket', 'mp-api', '--key', 'aborted', '--upload-id', other, '--part-number', '1', '--body', join(work, 'part2')]);
  await aws(['s3api', 'abort-multipart-upload', '--bucket', 'mp-api', '--key', 'aborted', '--upload-id', other]);
  const r = await tool(AWS, ['--endpoint-url', s3.endpoint, 's3api', 'list-parts', '--bucket', 'mp-api', '--key', 'aborted', '--upload-id', other], { env: awsEnv(key, work) });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /NoSuchUpload/);
});

test('aws-cli s3: mb, cp of a file over the 8 MB multipart threshold, ls, sync, rm', { timeout: 600_000 }, async () => {
  await aws(['s3', 'mb', 's3://cli']);
  const big = randomBytes(9 * MiB + 333);
  await writeFile(join(work, 'big.bin'), big);
  await aws(['s3', 'cp', '--no-progress', join(work, 'big.bin'), 's3://cli/big.bin']);
  const head = JSON.parse(await aws(['s3api', 'head-object', '--bucket', 'cli', '--key', 'big.bin'])) as { ETag: string; ContentLength: number };
  assert.match(head.ETag, /-2"$/, 'aws-cli sent it in two 8 MiB parts');
  assert.equal(head.ContentLength, big.length);
  await aws(['s3', 'cp', '--no-progress', 's3://cli/big.bin', join(work, 'big.back')]);
  assert.equal(md5(await readFile(join(work, 'big.back'))), md5(big));
  const src = join(work, 'sync-src');
  await makeTree(src, 40, 9 * MiB);
  await aws(['s3', 'sync', '--no-progress', src, 's3://cli/tree']);
  const ls = await aws(['s3', 'ls', '--recursive', 's3://cli/tree/']);
  assert.equal(ls.trim().split('\n').length, 41);
  const dst = join(work, 'sync-dst');
  await aws(['s3', 'sync', '--no-progress', 's3://cli/tree', dst]);
  assert.deepEqual(await tree(dst), await tree(src));
  await aws(['s3', 'rm', '--recursive', 's3://cli/tree']);
  await aws(['s3', 'rm', 's3://cli/big.bin']);
  assert.equal((await aws(['s3', 'ls', '--recursive', 's3://cli/'])).trim(), '');
  await aws(['s3', 'rb', 's3://cli']);
});

test('rclone (s3, provider Other): copy, check with MD5, sync, lsf, delete over many small files and one large one', { timeout: 600_000 }, async () => {
  const env = {
    ...awsEnv(key, work),
    RCLONE_CONFIG: join(work, 'rclone.conf'),
    RCLONE_CONFIG_TSR_TYPE: 's3',
    RCLONE_CONFIG_TSR_PROVIDER: 'Other',
    RCLONE_CONFIG_TSR_ACCESS_KEY_ID: key.accessKeyId,
    RCLONE_CONFIG_TSR_SECRET_ACCESS_KEY: key.secretKey,
    RCLONE_CONFIG_TSR_ENDPOINT: s3.endpoint,
    RCLONE_CONFIG_TSR_REGION: 'us-east-1',
    // The large file goes in 5 MiB parts: multipart, stitched by tessera, checked by MD5 below.
    RCLONE_S3_UPLOAD_CUTOFF: '5M',
    RCLONE_S3_CHUNK_SIZE: '5M',
  };
  await writeFile(env.RCLONE_CONFIG, '');
  const rclone = (...args: string[]) => mustRun('/usr/bin/rclone', ['--retries', '1', ...args], { env, timeoutMs: TOOL_TIMEOUT_MS });
  const src = join(work, 'rclone-src');
  await makeTree(src, 150, 12 * MiB);
  await rclone('mkdir', 'tsr:rclone');
  await rclone('copy', src, 'tsr:rclone/tree');
  const check = await rclone('check', src, 'tsr:rclone/tree');
  assert.match(check.stderr, /0 differences found/);
  assert.match(check.stderr, /151 matching files/);
  assert.doesNotMatch(check.stderr, /hash.*(unavailable|not supported)/i, 'MD5 hashes were compared');
  // Changed, removed and added files: sync makes the remote equal again.
  await writeFile(join(src, 'd0', 'e0', 'f0.txt'), 'changed');
  await rm(join(src, 'd1', 'e1', 'f1.txt'));
  await writeFile(join(src, 'new.txt'), 'new');
  await rclone('sync', src, 'tsr:rclone/tree');
  assert.match((await rclone('check', src, 'tsr:rclone/tree')).stderr, /0 differences found/);
  const lsf = (await rclone('lsf', '-R', '--files-only', 'tsr:rclone/tree')).stdout.trim().split('\n').sort();
  assert.deepEqual(lsf, [...(await tree(src)).keys()].sort());
  const back = join(work, 'rclone-back');
  await rclone('copy', 'tsr:rclone/tree', back);
  assert.deepEqual(await tree(back), await tree(src));
  await rclone('delete', 'tsr:rclone/tree');
  assert.equal((await rclone('lsf', '-R', 'tsr:rclone')).stdout.trim(), '');
});

test('restic: init, backup, check --read-data, restore gives back the identical tree', { timeout: 600_000 }, async () => {
  const env = { ...awsEnv(key, work), RESTIC_REPOSITORY: `s3:${s3.endpoint}/restic-repo`, RESTIC_PASSWORD: 'correct horse battery staple', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
  const restic = (...args: string[]) => mustRun('/usr/bin/restic', args, { env, timeoutMs: TOOL_TIMEOUT_MS });
  const src = join(work, 'restic-src');
  await makeTree(src, 120, 20 * MiB);
  await restic('init');
  await restic('backup', src);
  const checked = await restic('check', '--read-data');
  assert.match(checked.stdout, /no errors were found/);
  const target = join(work, 'restic-restore');
  await restic('restore', 'latest', '--target', target);
  assert.deepEqual(await tree(join(target, src)), await tree(src));
});

test('s3fs: mount, write, append, read, rename, ls, remove, unmount', { timeout: 300_000, skip: existsSync('/dev/fuse') ? false : 'no /dev/fuse on this machine: s3fs needs FUSE' }, async () => {
  await aws(['s3', 'mb', 's3://fuse']);
  const passwd = join(work, 's3fs-passwd');
  await writeFile(passwd, `${key.accessKeyId}:${key.secretKey}\n`, { mode: 0o600 });
  const mnt = join(work, 'mnt');
  await mkdir(mnt);
  await mustRun('/usr/bin/s3fs', ['fuse', mnt, '-o', `url=${s3.endpoint},use_path_request_style,passwd_file=${passwd},endpoint=us-east-1,sigv4,nonempty`], { timeoutMs: 60_000 });
  try {
    const data = randomBytes(3 * MiB);
    await writeFile(join(mnt, 'a.bin'), data);
    await appendFile(join(mnt, 'a.bin'), Buffer.from('tail'));
    assert.ok((await readFile(join(mnt, 'a.bin'))).equals(Buffer.concat([data, Buffer.from('tail')])));
    await mkdir(join(mnt, 'sub'));
    const { rename } = await import('node:fs/promises');
    await rename(join(mnt, 'a.bin'), join(mnt, 'sub', 'b.bin'));
    assert.deepEqual((await readdir(join(mnt, 'sub'))).sort(), ['b.bin']);
    assert.equal((await stat(join(mnt, 'sub', 'b.bin'))).size, data.length + 4);
    // What s3fs wrote is an ordinary object to any other client.
    const back = join(work, 'fuse-back');
    await aws(['s3', 'cp', '--no-progress', 's3://fuse/sub/b.bin', back]);
    assert.equal(md5(await readFile(back)), md5(Buffer.concat([data, Buffer.from('tail')])));
    await rm(join(mnt, 'sub', 'b.bin'));
    assert.deepEqual(await readdir(join(mnt, 'sub')), []);
  } finally {
    await tool('/usr/bin/fusermount', ['-u', mnt], { timeoutMs: 30_000 });
  }
  assert.equal((await aws(['s3', 'ls', '--recursive', 's3://fuse/'])).split('\n').filter((l) => l.includes('b.bin')).length, 0);
});

test('s3cmd: mb, put, get, ls, del', { timeout: 300_000 }, async () => {
  const cfg = join(work, 's3cmd.cfg');
  await writeFile(cfg, [
    '[default]',
    `access_key = ${key.accessKeyId}`,
    `secret_key = ${key.secretKey}`,
    `host_base = ${s3.host}:${s3.port}`,
    `host_bucket = ${s3.host}:${s3.port}`,
    'use_https = False',
    'signature_v2 = False',
    'bucket_location = us-east-1',
    '',
  ].join('\n'));
  const s3cmd = (...args: string[]) => mustRun('/usr/bin/s3cmd', ['-c', cfg, '--no-progress', ...args], { env: { HOME: work }, timeoutMs: TOOL_TIMEOUT_MS });
  await s3cmd('mb', 's3://cmd');
  const data = randomBytes(17 * MiB + 5);
  await writeFile(join(work, 'cmd.bin'), data);
  // Over s3cmd's 15 MiB multipart chunk: sent in two parts.
  await s3cmd('put', join(work, 'cmd.bin'), 's3://cmd/x/cmd.bin');
  assert.match((await s3cmd('ls', 's3://cmd/x/')).stdout, /cmd\.bin/);
  await s3cmd('get', 's3://cmd/x/cmd.bin', join(work, 'cmd.back'));
  assert.equal(md5(await readFile(join(work, 'cmd.back'))), md5(data));
  await s3cmd('del', 's3://cmd/x/cmd.bin');
  assert.doesNotMatch((await s3cmd('ls', '--recursive', 's3://cmd')).stdout, /cmd\.bin/);
});
