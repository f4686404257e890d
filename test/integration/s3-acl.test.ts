/**
 * S3 ACLs with a real client against three real nodes: aws-cli sets and reads canned ACLs on
 * buckets, objects, copies and multipart uploads, and makes anonymous requests
 * (`--no-sign-request`); plain unsigned fetches check the same from outside any SDK. Anonymous
 * callers read only what an ACL makes public and never write; scoped keys change ACLs only within
 * their rights.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_PATH } from '../../src/cli/local-cluster.js';
import { nodeRuntimeArgs, withMallocEnv } from '../../src/cli/runtime-tuning.js';
import { awsEnv, startS3Cluster, tool, type S3Cluster, type S3Key } from '../helpers/s3-cluster.js';

const AWS = '/usr/bin/aws';
const awsMissing = existsSync(AWS) ? false : 'not installed: aws (apt-get install awscli)';
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
const run = promisify(execFile);

describe('S3 ACLs: canned ACLs through aws-cli, anonymous reads of public objects only', { timeout: 600_000, skip: awsMissing }, () => {
  let s3: S3Cluster;
  let work: string;
  let main: S3Key;
  let other: S3Key;
  let readWrite: S3Key;
  let writeOnly: S3Key;

  /** A key made by `tessera s3 key create` scoped to one bucket. */
  async function scopedKey(name: string, bucket: string, perms: string[]): Promise<S3Key> {
    const n0 = s3.cluster.node(0);
    const { stdout } = await run(process.execPath, [...nodeRuntimeArgs(), CLI_PATH, 's3', 'key', 'create', '--name', name, '--bucket', bucket, ...perms.map((p) => `--${p}`), '--api', n0.api, '--data', n0.dataDir, '--json'], { env: withMallocEnv({ ...process.env }), timeout: 30_000 });
    const k = JSON.parse(stdout) as { accessKeyId: string; secretKey: string };
    return { accessKeyId: k.accessKeyId, secretKey: k.secretKey, name };
  }

  /** aws-cli as `key`, or unsigned (`--no-sign-request`) when key is null; JSON output parsed when there is any. */
  async function aws(key: S3Key | null, args: string[]): Promise<{ code: number | null; json: Record<string, unknown>; stderr: string }> {
    const env = awsEnv(key ?? main, work);
    const r = await tool(AWS, ['--endpoint-url', s3.endpoint, ...(key === null ? ['--no-sign-request'] : []), ...args], { env, timeoutMs: 120_000 });
    let json: Record<string, unknown> = {};
    if (r.stdout.trim().startsWith('{')) json = JSON.parse(r.stdout) as Record<string, unknown>;
    return { code: r.code, json, stderr: r.stderr };
  }
  async function ok(key: S3Key | null, args: string[]): Promise<Record<string, unknown>> {
    const r = await aws(key, args);
    assert.equal(r.code, 0, `aws ${args.join(' ')}: ${r.stderr}`);
    return r.json;
  }
  async function fails(key: S3Key | null, args: string[], code: RegExp): Promise<void> {
    const r = await aws(key, args);
    assert.notEqual(r.code, 0, `aws ${args.join(' ')} should fail`);
    assert.match(r.stderr, code, `aws ${args.join(' ')}`);
  }
  const grantsOf = (acl: Record<string, unknown>) =>
    (acl.Grants as Array<{ Grantee: { ID?: string; URI?: string }; Permission: string }>).map((g) => `${g.Grantee.ID ?? g.Grantee.URI}:${g.Permission}`).sort();
  const unsigned = (path: string, init: RequestInit = {}) => fetch(`${s3.endpoint}${path}`, init);

  before(async () => {
    s3 = await startS3Cluster({ nodes: 3, memory: true });
    work = await mkdtemp(join(tmpdir(), 'tessera-s3-acl-'));
    main = await s3.createKey('main');
    other = await s3.createKey('other');
    readWrite = await scopedKey('pub-rw', 'pub', ['read', 'write']);
    writeOnly = await scopedKey('pub-w', 'pub', ['write']);
    await writeFile(join(work, 'open.txt'), 'anyone may read this');
    await writeFile(join(work, 'secret.txt'), 'only keys may read this');
  });

  after(async () => {
    await s3?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('canned ACLs round trip on buckets and objects; GetObjectAcl and ListObjects name the same owner, the key that wrote', async () => {
    await ok(main, ['s3api', 'create-bucket', '--bucket', 'pub', '--acl', 'public-read']);
    const bacl = await ok(main, ['s3api', 'get-bucket-acl', '--bucket', 'pub']);
    assert.deepEqual(bacl.Owner, { ID: main.accessKeyId, DisplayName: 'main' });
    assert.deepEqual(grantsOf(bacl), [`${ALL_USERS}:READ`, `${main.accessKeyId}:FULL_CONTROL`].sort());
    await ok(main, ['s3api', 'put-object', '--bucket', 'pub', '--key', 'open.txt', '--body', join(work, 'open.txt'), '--acl', 'public-read']);
    await ok(other, ['s3api', 'put-object', '--bucket', 'pub', '--key', 'secret.txt', '--body', join(work, 'secret.txt')]);
    const open = await ok(main, ['s3api', 'get-object-acl', '--bucket', 'pub', '--key', 'open.txt']);
    assert.deepEqual(grantsOf(open), [`${ALL_USERS}:READ`, `${main.accessKeyId}:FULL_CONTROL`].sort());
    const secret = await ok(main, ['s3api', 'get-object-acl', '--bucket', 'pub', '--key', 'secret.txt']);
    assert.deepEqual(secret.Owner, { ID: other.accessKeyId, DisplayName: 'other' });
    assert.deepEqual(grantsOf(secret), [`${other.accessKeyId}:FULL_CONTROL`]);
    const listed = await ok(main, ['s3api', 'list-objects', '--bucket', 'pub']);
    const owners = Object.fromEntries((listed.Contents as Array<{ Key: string; Owner: unknown }>).map((c) => [c.Key, c.Owner]));
    assert.deepEqual(owners, { 'open.txt': open.Owner, 'secret.txt': secret.Owner });
    // Every canned ACL, set by header, reads back as its grants.
    for (const [acl, grants] of [
      ['authenticated-read', ['http://acs.amazonaws.com/groups/global/AuthenticatedUsers:READ']],
      ['public-read-write', [`${ALL_USERS}:READ`, `${ALL_USERS}:WRITE`]],
      ['private', []],
    ] as const) {
      await ok(main, ['s3api', 'put-bucket-acl', '--bucket', 'pub', '--acl', acl]);
      assert.deepEqual(grantsOf(await ok(main, ['s3api', 'get-bucket-acl', '--bucket', 'pub'])), [...grants, `${main.accessKeyId}:FULL_CONTROL`].sort(), acl);
    }
    // A policy document whose grants amount to a canned ACL is taken; a grant to another user is 501.
    const policy = { Owner: { ID: main.accessKeyId }, Grants: [{ Grantee: { Type: 'CanonicalUser', ID: main.accessKeyId }, Permission: 'FULL_CONTROL' }, { Grantee: { Type: 'Group', URI: ALL_USERS }, Permission: 'READ' }] };
    await ok(main, ['s3api', 'put-bucket-acl', '--bucket', 'pub', '--access-control-policy', JSON.stringify(policy)]);
    assert.deepEqual(grantsOf(await ok(main, ['s3api', 'get-bucket-acl', '--bucket', 'pub'])), [`${ALL_USERS}:READ`, `${main.accessKeyId}:FULL_CONTROL`].sort());
    await fails(main, ['s3api', 'put-object-acl', '--bucket', 'pub', '--key', 'open.txt', '--grant-full-control', `id=${other.accessKeyId}`], /NotImplemented/);
    const toOther = { ...policy, Grants: [...policy.Grants, { Grantee: { Type: 'CanonicalUser', ID: other.accessKeyId }, Permission: 'FULL_CONTROL' }] };
    await fails(main, ['s3api', 'put-bucket-acl', '--bucket', 'pub', '--access-control-policy', JSON.stringify(toOther)], /NotImplemented/);
    await fails(main, ['s3api', 'put-object', '--bucket', 'pub', '--key', 'x', '--acl', 'bucket-owner-full-control'], /NotImplemented/);
    assert.deepEqual(grantsOf(await ok(main, ['s3api', 'get-bucket-acl', '--bucket', 'pub'])), [`${ALL_USERS}:READ`, `${main.accessKeyId}:FULL_CONTROL`].sort(), 'refused changes changed nothing');
    await fails(main, ['s3api', 'head-object', '--bucket', 'pub', '--key', 'x'], /404|Not Found/);
  });

  it('anonymous: a public-read object is served (GET, HEAD, range), a private one is 403, a public bucket lists, a missing key there is 404', async () => {
    await ok(null, ['s3api', 'get-object', '--bucket', 'pub', '--key', 'open.txt', join(work, 'got.txt')]);
    assert.equal(await readFile(join(work, 'got.txt'), 'utf8'), 'anyone may read this');
    const r = await unsigned('/pub/open.txt', { headers: { range: 'bytes=0-5' } });
    assert.equal(r.status, 206);
    assert.equal(await r.text(), 'anyone');
    assert.equal((await unsigned('/pub/open.txt', { method: 'HEAD' })).status, 200);
    // Response header overrides need a signature (as S3): an anonymous link cannot re-type a public object.
    assert.equal((await unsigned('/pub/open.txt?response-content-type=text%2Fhtml')).status, 400);
    await fails(null, ['s3api', 'get-object', '--bucket', 'pub', '--key', 'secret.txt', join(work, 'no.txt')], /AccessDenied|403/);
    const denied = await unsigned('/pub/secret.txt');
    assert.equal(denied.status, 403);
    assert.match(await denied.text(), /<Code>AccessDenied<\/Code>/);
    assert.equal((await unsigned('/pub/secret.txt', { method: 'HEAD' })).status, 403);
    // The bucket is public-read: it lists, without owners, and an absent key is NoSuchKey.
    const listed = await ok(null, ['s3api', 'list-objects-v2', '--bucket', 'pub', '--fetch-owner']);
    assert.deepEqual((listed.Contents as Array<{ Key: string; Owner?: unknown }>).map((c) => [c.Key, c.Owner]), [['open.txt', undefined], ['secret.txt', undefined]]);
    const v1 = await unsigned('/pub');
    assert.equal(v1.status, 200);
    assert.doesNotMatch(await v1.text(), /<Owner>/);
    const missing = await unsigned('/pub/nothing-here');
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /<Code>NoSuchKey<\/Code>/);
    // A private bucket neither lists nor tells which keys are absent; ListBuckets and ACLs are never anonymous.
    await ok(main, ['s3api', 'create-bucket', '--bucket', 'priv']);
    await ok(main, ['s3api', 'put-object', '--bucket', 'priv', '--key', 'open.txt', '--body', join(work, 'open.txt'), '--acl', 'public-read']);
    assert.equal((await unsigned('/priv')).status, 403);
    assert.equal((await unsigned('/priv?list-type=2')).status, 403);
    assert.equal((await unsigned('/priv/nothing-here')).status, 403);
    assert.equal(await (await unsigned('/priv/open.txt')).text(), 'anyone may read this', 'the object ACL alone makes it readable');
    assert.equal((await unsigned('/')).status, 403);
    assert.equal((await unsigned('/pub?acl')).status, 403);
    assert.equal((await unsigned('/pub/open.txt?acl')).status, 403);
  });

  it('anonymous PUT, DELETE, multipart and ACL changes are refused even on a public-read-write bucket, and change nothing', async () => {
    await ok(main, ['s3api', 'create-bucket', '--bucket', 'open-rw', '--acl', 'public-read-write']);
    await ok(main, ['s3api', 'put-object', '--bucket', 'open-rw', '--key', 'keep.txt', '--body', join(work, 'open.txt'), '--acl', 'public-read-write']);
    await fails(null, ['s3api', 'put-object', '--bucket', 'open-rw', '--key', 'new.txt', '--body', join(work, 'open.txt')], /AccessDenied/);
    await fails(null, ['s3api', 'delete-object', '--bucket', 'open-rw', '--key', 'keep.txt'], /AccessDenied/);
    await fails(null, ['s3api', 'create-multipart-upload', '--bucket', 'open-rw', '--key', 'mp'], /AccessDenied/);
    await fails(null, ['s3api', 'put-object-acl', '--bucket', 'open-rw', '--key', 'keep.txt', '--acl', 'private'], /AccessDenied/);
    await fails(null, ['s3api', 'delete-bucket', '--bucket', 'open-rw'], /AccessDenied/);
    for (const [method, path] of [['PUT', '/open-rw/raw.txt'], ['DELETE', '/open-rw/keep.txt'], ['POST', '/open-rw?delete'], ['PUT', '/anon-bucket']] as const) {
      assert.equal((await unsigned(path, { method, body: 'x' })).status, 403, `${method} ${path}`);
    }
    const listed = await ok(main, ['s3api', 'list-objects-v2', '--bucket', 'open-rw']);
    assert.deepEqual((listed.Contents as Array<{ Key: string }>).map((c) => c.Key), ['keep.txt']);
    assert.deepEqual(grantsOf(await ok(main, ['s3api', 'get-object-acl', '--bucket', 'open-rw', '--key', 'keep.txt'])), [`${ALL_USERS}:READ`, `${ALL_USERS}:WRITE`, `${main.accessKeyId}:FULL_CONTROL`].sort());
    await fails(main, ['s3api', 'head-bucket', '--bucket', 'anon-bucket'], /404|Not Found/);
  });

  it('a deleted public object is 404 NoSuchKey to anonymous readers, and once its bucket is gone 404 NoSuchBucket', async () => {
    await ok(main, ['s3api', 'create-bucket', '--bucket', 'gone', '--acl', 'public-read']);
    await ok(main, ['s3api', 'put-object', '--bucket', 'gone', '--key', 'foo', '--body', join(work, 'open.txt'), '--acl', 'public-read']);
    assert.equal((await unsigned('/gone/foo')).status, 200);
    await ok(main, ['s3api', 'delete-object', '--bucket', 'gone', '--key', 'foo']);
    const noKey = await unsigned('/gone/foo');
    assert.equal(noKey.status, 404);
    assert.match(await noKey.text(), /<Code>NoSuchKey<\/Code>/);
    await ok(main, ['s3api', 'delete-bucket', '--bucket', 'gone']);
    const noBucket = await unsigned('/gone/foo');
    assert.equal(noBucket.status, 404);
    assert.match(await noBucket.text(), /<Code>NoSuchBucket<\/Code>/);
  });

  it('who may change ACLs: not a key without the owner right (bucket) or without read and write (object); authenticated-read opens an object to every key', async () => {
    await fails(readWrite, ['s3api', 'put-bucket-acl', '--bucket', 'pub', '--acl', 'public-read-write'], /AccessDenied/);
    await fails(writeOnly, ['s3api', 'put-object-acl', '--bucket', 'pub', '--key', 'secret.txt', '--acl', 'public-read'], /AccessDenied/);
    assert.equal((await unsigned('/pub/secret.txt')).status, 403, 'the write-only key could not publish what it cannot read');
    // A key scoped to another bucket reads only what an ACL opens to keys.
    const elsewhere = await scopedKey('elsewhere', 'priv', ['read', 'write', 'owner']);
    await fails(elsewhere, ['s3api', 'get-object', '--bucket', 'pub', '--key', 'secret.txt', join(work, 'no.txt')], /AccessDenied|403/);
    await ok(readWrite, ['s3api', 'put-object-acl', '--bucket', 'pub', '--key', 'secret.txt', '--acl', 'authenticated-read']);
    await ok(elsewhere, ['s3api', 'get-object', '--bucket', 'pub', '--key', 'secret.txt', join(work, 'auth.txt')]);
    assert.equal(await readFile(join(work, 'auth.txt'), 'utf8'), 'only keys may read this');
    assert.equal((await unsigned('/pub/secret.txt')).status, 403, 'authenticated-read is not public');
    // The ACL change kept the object as it was: bytes, owner and Last-Modified.
    const acl = await ok(main, ['s3api', 'get-object-acl', '--bucket', 'pub', '--key', 'secret.txt']);
    assert.deepEqual(acl.Owner, { ID: other.accessKeyId, DisplayName: 'other' });
    await ok(main, ['s3api', 'put-object-acl', '--bucket', 'pub', '--key', 'secret.txt', '--acl', 'public-read']);
    assert.equal(await (await unsigned('/pub/secret.txt')).text(), 'only keys may read this');
    await ok(main, ['s3api', 'put-object-acl', '--bucket', 'pub', '--key', 'secret.txt', '--acl', 'private']);
    assert.equal((await unsigned('/pub/secret.txt')).status, 403, 'private again');
    // A copy takes the ACL it asks for, not the source's; its owner is the key that copied.
    await ok(readWrite, ['s3api', 'copy-object', '--bucket', 'pub', '--key', 'copy.txt', '--copy-source', 'pub/secret.txt', '--acl', 'public-read']);
    assert.equal(await (await unsigned('/pub/copy.txt')).text(), 'only keys may read this');
    assert.deepEqual((await ok(main, ['s3api', 'get-object-acl', '--bucket', 'pub', '--key', 'copy.txt'])).Owner, { ID: readWrite.accessKeyId, DisplayName: 'pub-rw' });
  });

  it('a multipart upload carries its ACL, owner, Cache-Control, Expires, Content-Disposition, Content-Language, Content-Type and x-amz-meta onto the object', async () => {
    await writeFile(join(work, 'part1'), Buffer.alloc(5 << 20, 7));
    await writeFile(join(work, 'part2'), 'tail');
    const expires = 'Thu, 01 Jan 2037 00:00:00 GMT';
    const up = await ok(other, ['s3api', 'create-multipart-upload', '--bucket', 'pub', '--key', 'mp.bin', '--acl', 'public-read', '--cache-control', 'max-age=60',
      '--expires', expires, '--content-disposition', 'attachment; filename="mp.bin"', '--content-language', 'de', '--content-type', 'application/x-test', '--metadata', 'colour=blue']);
    const uploadId = up.UploadId as string;
    const uploads = await ok(main, ['s3api', 'list-multipart-uploads', '--bucket', 'pub']);
    const listed = (uploads.Uploads as Array<{ Key: string; Owner: unknown; Initiator: unknown }>).find((u) => u.Key === 'mp.bin')!;
    assert.deepEqual(listed.Owner, { ID: other.accessKeyId, DisplayName: 'other' });
    assert.deepEqual(listed.Initiator, listed.Owner);
    const e1 = (await ok(other, ['s3api', 'upload-part', '--bucket', 'pub', '--key', 'mp.bin', '--upload-id', uploadId, '--part-number', '1', '--body', join(work, 'part1')])).ETag;
    const e2 = (await ok(other, ['s3api', 'upload-part', '--bucket', 'pub', '--key', 'mp.bin', '--upload-id', uploadId, '--part-number', '2', '--body', join(work, 'part2')])).ETag;
    await ok(other, ['s3api', 'complete-multipart-upload', '--bucket', 'pub', '--key', 'mp.bin', '--upload-id', uploadId,
      '--multipart-upload', JSON.stringify({ Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] })]);
    const head = await ok(main, ['s3api', 'head-object', '--bucket', 'pub', '--key', 'mp.bin']);
    assert.equal(head.CacheControl, 'max-age=60');
    assert.equal(head.ContentDisposition, 'attachment; filename="mp.bin"');
    assert.equal(head.ContentLanguage, 'de');
    assert.equal(head.ContentType, 'application/x-test');
    assert.deepEqual(head.Metadata, { colour: 'blue' });
    assert.equal(new Date(head.Expires as string).toUTCString(), expires);
    const anon = await unsigned('/pub/mp.bin', { method: 'HEAD' });
    assert.equal(anon.status, 200, 'public-read from CreateMultipartUpload');
    assert.equal(anon.headers.get('content-length'), String((5 << 20) + 4));
    assert.equal(anon.headers.get('cache-control'), 'max-age=60');
    const acl = await ok(main, ['s3api', 'get-object-acl', '--bucket', 'pub', '--key', 'mp.bin']);
    assert.deepEqual(acl.Owner, { ID: other.accessKeyId, DisplayName: 'other' });
    const v1 = await ok(main, ['s3api', 'list-objects', '--bucket', 'pub', '--prefix', 'mp.bin']);
    assert.deepEqual((v1.Contents as Array<{ Owner: unknown }>)[0]!.Owner, acl.Owner);
  });
});
