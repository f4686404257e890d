/**
 * The S3 face with real clients against real nodes: aws-cli and s3cmd from Debian, keys made
 * with `tessera s3 key create`, and the refusals real clients cannot be made to provoke sent
 * by a small signer (tampered streaming chunk, wrong Content-MD5, malformed XML, skewed clock).
 * Each refusal is checked to leave nothing stored.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, LocalCluster, freePort } from '../../src/cli/local-cluster.js';
import { hasTool } from '../helpers/nbd-harness.js';
import { s3, send, sign, signedChunkedPut, type S3Creds } from '../helpers/s3-client.js';

const AWS = '/usr/bin/aws';
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
const awsMissing = hasTool('aws') && (await import('node:fs')).existsSync(AWS) ? false : 'not installed: aws (apt-get install awscli)';
const s3cmdMissing = hasTool('s3cmd') ? false : 'not installed: s3cmd (apt-get install s3cmd)';

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Key {
  accessKeyId: string;
  secretKey: string;
  buckets?: unknown;
}

describe('S3 with aws-cli, s3cmd and hand-made refusals against three real nodes', { timeout: 600_000 }, () => {
  let cluster: LocalCluster;
  let endpoint: string;
  let admin: Key;
  let scoped: Key;
  let work: string;
  let creds: S3Creds;
  let awsEnv: NodeJS.ProcessEnv;

  before(async () => {
    const port = await freePort();
    endpoint = `127.0.0.1:${port}`;
    cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'warn', argsFor: (i) => (i === 0 ? ['--s3', endpoint, '--s3-domain', 's3.tessera.test'] : []) });
    await cluster.waitForMembers({ alive: 3 });
    work = await mkdtemp(join(tmpdir(), 'tessera-s3-'));
    const cli = async (...args: string[]) => {
      const r = await exec(process.execPath, [CLI_PATH, ...args, '--data', cluster.node(0).dataDir, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Key;
    };
    admin = await cli('s3', 'key', 'create', '--name', 'admin');
    scoped = await cli('s3', 'key', 'create', '--name', 'photos-only', '--bucket', 'photos', '--read', '--write');
    assert.deepEqual(scoped.buckets, { photos: ['read', 'write'] });
    const listed = JSON.parse((await exec(process.execPath, [CLI_PATH, 's3', 'key', 'ls', '--data', cluster.node(0).dataDir, '--json'])).stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(listed.map((k) => k.name).sort(), ['admin', 'photos-only']);
    assert.ok(listed.every((k) => k.secretKey === undefined), 'key ls never shows a secret');
    creds = { endpoint, accessKeyId: admin.accessKeyId, secret: admin.secretKey };
    // aws-cli's defaults: files over 8 MiB go up in 8 MiB parts (multipart).
    const config = join(work, 'aws-config');
    await writeFile(config, '[default]\n');
    awsEnv = {
      AWS_ACCESS_KEY_ID: admin.accessKeyId, AWS_SECRET_ACCESS_KEY: admin.secretKey, AWS_DEFAULT_REGION: 'tessera-local-1',
      AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true', AWS_PAGER: '',
    };
  });

  after(async () => {
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const aws = (args: string[], env: NodeJS.ProcessEnv = {}) => exec(AWS, ['--endpoint-url', `http://${endpoint}`, ...args], { ...awsEnv, ...env });

  it('aws s3 mb, cp (a 20 MiB file, over the 8 MiB multipart threshold), ls, sync of a tree, cp back byte-identical, rm', { skip: awsMissing }, async () => {
    assert.equal((await aws(['s3', 'mb', 's3://cli-bucket'])).code, 0);
    const big = randomBytes(20 << 20);
    await writeFile(join(work, 'big.bin'), big);
    const cp = await aws(['s3', 'cp', join(work, 'big.bin'), 's3://cli-bucket/dir/big.bin']);
    assert.equal(cp.code, 0, cp.stderr);
    const tree = join(work, 'tree');
    for (const d of ['a', 'a/b', 'c']) await mkdir(join(tree, d), { recursive: true });
    const files: Record<string, Buffer> = {};
    for (const f of ['a/1.txt', 'a/b/2.txt', 'a/b/3 with space.txt', 'c/4+plus.txt', 'top.txt']) {
      files[f] = randomBytes(1000 + Object.keys(files).length);
      await writeFile(join(tree, f), files[f]!);
    }
    const sync = await aws(['s3', 'sync', tree, 's3://cli-bucket/tree']);
    assert.equal(sync.code, 0, sync.stderr);
    const ls = await aws(['s3', 'ls', '--recursive', 's3://cli-bucket/']);
    const keys = ls.stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(3).join(' ')).sort();
    assert.deepEqual(keys, ['dir/big.bin', ...Object.keys(files).map((f) => `tree/${f}`)].sort());
    assert.match(ls.stdout, new RegExp(`\\s${20 << 20}\\sdir/big.bin`));
    // ls with a delimiter shows the "directories".
    const top = await aws(['s3', 'ls', 's3://cli-bucket/tree/']);
    assert.deepEqual(top.stdout.trim().split('\n').map((l) => l.trim()).sort(), ['PRE a/', 'PRE c/', ...[top.stdout.match(/\S+\s+\S+\s+\d+ top.txt/)?.[0] ?? 'missing top.txt']].sort());
    // A second sync has nothing to send.
    assert.equal((await aws(['s3', 'sync', tree, 's3://cli-bucket/tree'])).stdout.trim(), '');
    const back = join(work, 'back.bin');
    assert.equal((await aws(['s3', 'cp', 's3://cli-bucket/dir/big.bin', back])).code, 0);
    assert.ok((await readFile(back)).equals(big), 'read back byte-identical');
    const down = join(work, 'down');
    assert.equal((await aws(['s3', 'sync', 's3://cli-bucket/tree', down])).code, 0);
    for (const [f, data] of Object.entries(files)) assert.ok((await readFile(join(down, f))).equals(data), `${f} synced back identical`);
    // Three 8 MiB-or-less parts: the ETag is the MD5 of the parts' MD5s, then -3.
    const head = JSON.parse((await aws(['s3api', 'head-object', '--bucket', 'cli-bucket', '--key', 'dir/big.bin'])).stdout) as { ETag: string; ContentLength: number; AcceptRanges: string };
    const partMd5s = [0, 1, 2].map((i) => createHash('md5').update(big.subarray(i * (8 << 20), (i + 1) * (8 << 20))).digest());
    assert.equal(head.ETag, `"${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-3"`);
    assert.equal(head.ContentLength, big.length);
    assert.equal(head.AcceptRanges, 'bytes');
    const rmr = await aws(['s3', 'rm', '--recursive', 's3://cli-bucket/']);
    assert.equal(rmr.code, 0, rmr.stderr);
    assert.equal((await aws(['s3', 'ls', '--recursive', 's3://cli-bucket/'])).stdout.trim(), '');
    assert.equal((await aws(['s3', 'rb', 's3://cli-bucket'])).code, 0);
  });

  it('aws s3api: Range, copy (metadata COPY and REPLACE), delete-objects, conditional GET, presigned URL and its expiry', { skip: awsMissing }, async () => {
    assert.equal((await aws(['s3', 'mb', 's3://api-bucket'])).code, 0);
    const data = randomBytes(100_000);
    await writeFile(join(work, 'obj'), data);
    const put = await aws(['s3api', 'put-object', '--bucket', 'api-bucket', '--key', 'src', '--body', join(work, 'obj'), '--metadata', 'colour=blue', '--content-type', 'image/x-test']);
    assert.equal(put.code, 0, put.stderr);
    const part = join(work, 'part');
    const ranged = JSON.parse((await aws(['s3api', 'get-object', '--bucket', 'api-bucket', '--key', 'src', '--range', 'bytes=1000-1999', part])).stdout) as { ContentRange: string; ContentLength: number };
    assert.equal(ranged.ContentRange, `bytes 1000-1999/${data.length}`);
    assert.ok((await readFile(part)).equals(data.subarray(1000, 2000)));
    assert.equal((await aws(['s3api', 'copy-object', '--bucket', 'api-bucket', '--key', 'copy', '--copy-source', 'api-bucket/src'])).code, 0);
    const copyHead = JSON.parse((await aws(['s3api', 'head-object', '--bucket', 'api-bucket', '--key', 'copy'])).stdout) as { Metadata: Record<string, string>; ContentType: string; ETag: string };
    assert.deepEqual(copyHead.Metadata, { colour: 'blue' });
    assert.equal(copyHead.ContentType, 'image/x-test');
    const replaced = await aws(['s3api', 'copy-object', '--bucket', 'api-bucket', '--key', 'copy2', '--copy-source', 'api-bucket/src', '--metadata-directive', 'REPLACE', '--metadata', 'colour=red', '--content-type', 'text/plain']);
    assert.equal(replaced.code, 0, replaced.stderr);
    const h2 = JSON.parse((await aws(['s3api', 'head-object', '--bucket', 'api-bucket', '--key', 'copy2'])).stdout) as { Metadata: Record<string, string>; ContentType: string; ETag: string };
    assert.deepEqual(h2.Metadata, { colour: 'red' });
    assert.equal(h2.ContentType, 'text/plain');
    assert.equal(h2.ETag, copyHead.ETag);
    // Removing the source leaves the copies readable: they name the same file, which stays referenced.
    assert.equal((await aws(['s3', 'rm', 's3://api-bucket/src'])).code, 0);
    assert.equal((await aws(['s3', 'cp', 's3://api-bucket/copy', join(work, 'copy-back')])).code, 0);
    assert.ok((await readFile(join(work, 'copy-back'))).equals(data));
    const notModified = await aws(['s3api', 'get-object', '--bucket', 'api-bucket', '--key', 'copy', '--if-none-match', copyHead.ETag, join(work, 'nm')]);
    assert.notEqual(notModified.code, 0);
    assert.match(notModified.stderr, /304|Not Modified/);
    const failed = await aws(['s3api', 'get-object', '--bucket', 'api-bucket', '--key', 'copy', '--if-match', '"0000"', join(work, 'pf')]);
    assert.match(failed.stderr, /PreconditionFailed/);
    const presigned = (await aws(['s3', 'presign', 's3://api-bucket/copy', '--expires-in', '600'])).stdout.trim();
    const viaUrl = await fetch(presigned);
    assert.equal(viaUrl.status, 200);
    assert.ok(Buffer.from(await viaUrl.arrayBuffer()).equals(data));
    const short = (await aws(['s3', 'presign', 's3://api-bucket/copy', '--expires-in', '1'])).stdout.trim();
    await new Promise((r) => setTimeout(r, 2100));
    const expired = await fetch(short);
    assert.equal(expired.status, 403);
    assert.match(await expired.text(), /<Code>AccessDenied<\/Code>.*expired/s);
    const del = JSON.parse((await aws(['s3api', 'delete-objects', '--bucket', 'api-bucket', '--delete', 'Objects=[{Key=copy},{Key=copy2},{Key=never-existed}]'])).stdout) as { Deleted: Array<{ Key: string }> };
    assert.deepEqual(del.Deleted.map((d) => d.Key).sort(), ['copy', 'copy2', 'never-existed']);
    const notFound = await aws(['s3api', 'head-object', '--bucket', 'api-bucket', '--key', 'copy']);
    assert.match(notFound.stderr, /404|Not Found/);
    const rb = await aws(['s3', 'rb', 's3://api-bucket']);
    assert.equal(rb.code, 0, rb.stderr);
    const gone = await aws(['s3', 'ls', 's3://api-bucket']);
    assert.match(gone.stderr, /NoSuchBucket/);
  });

  it('a key scoped to one bucket reaches only that bucket; ListBuckets shows only it; a wrong secret is SignatureDoesNotMatch', { skip: awsMissing }, async () => {
    assert.equal((await aws(['s3', 'mb', 's3://photos'])).code, 0);
    assert.equal((await aws(['s3', 'mb', 's3://secret-stuff'])).code, 0);
    const asScoped = { AWS_ACCESS_KEY_ID: scoped.accessKeyId, AWS_SECRET_ACCESS_KEY: scoped.secretKey };
    await writeFile(join(work, 'p.txt'), 'photo');
    assert.equal((await aws(['s3', 'cp', join(work, 'p.txt'), 's3://photos/p.txt'], asScoped)).code, 0);
    const denied = await aws(['s3', 'cp', join(work, 'p.txt'), 's3://secret-stuff/p.txt'], asScoped);
    assert.match(denied.stderr, /AccessDenied/);
    assert.match((await aws(['s3', 'ls', 's3://secret-stuff'], asScoped)).stderr, /AccessDenied/);
    assert.match((await aws(['s3', 'mb', 's3://new-by-scoped'], asScoped)).stderr, /AccessDenied/);
    // Read and write, not owner: the bucket itself cannot be removed.
    assert.match((await aws(['s3', 'rb', 's3://photos', '--force'], asScoped)).stderr, /AccessDenied/);
    const buckets = (await aws(['s3', 'ls'], asScoped)).stdout.trim().split('\n').map((l) => l.split(/\s+/)[2]);
    assert.deepEqual(buckets, ['photos']);
    assert.ok((await aws(['s3', 'ls'])).stdout.includes('secret-stuff'), 'the unscoped key sees every bucket');
    const wrong = await aws(['s3', 'ls', 's3://photos'], { AWS_SECRET_ACCESS_KEY: admin.secretKey.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /SignatureDoesNotMatch/);
    const unknown = await aws(['s3', 'ls'], { AWS_ACCESS_KEY_ID: 'TKAAAAAAAAAAAAAAAAAA' });
    assert.match(unknown.stderr, /InvalidAccessKeyId/);
  });

  it('s3cmd mb, put, get, ls, del, rb', { skip: s3cmdMissing }, async () => {
    const cfg = join(work, 's3cfg');
    await writeFile(cfg, `[default]\naccess_key = ${admin.accessKeyId}\nsecret_key = ${admin.secretKey}\nhost_base = ${endpoint}\nhost_bucket = ${endpoint}\nuse_https = False\nsignature_v2 = False\n`);
    const c = (...args: string[]) => exec('s3cmd', ['-c', cfg, ...args]);
    assert.equal((await c('mb', 's3://s3cmd-bucket')).code, 0);
    const data = randomBytes(300_000);
    await writeFile(join(work, 's3cmd.bin'), data);
    const put = await c('put', join(work, 's3cmd.bin'), 's3://s3cmd-bucket/x/s3cmd.bin');
    assert.equal(put.code, 0, put.stderr);
    const ls = await c('ls', '--recursive', 's3://s3cmd-bucket');
    assert.match(ls.stdout, /300000\s+s3:\/\/s3cmd-bucket\/x\/s3cmd.bin/);
    const got = await c('get', '--force', 's3://s3cmd-bucket/x/s3cmd.bin', join(work, 's3cmd.back'));
    assert.equal(got.code, 0, got.stderr);
    assert.ok((await readFile(join(work, 's3cmd.back'))).equals(data));
    assert.equal((await c('del', 's3://s3cmd-bucket/x/s3cmd.bin')).code, 0);
    assert.equal((await c('ls', '--recursive', 's3://s3cmd-bucket')).stdout.trim(), '');
    assert.equal((await c('rb', 's3://s3cmd-bucket')).code, 0);
  });

  describe('refusals leave nothing stored', () => {
    const bucket = 'refusals';
    const head = async (key: string) => (await s3(creds, { method: 'HEAD', path: `/${bucket}/${key}` })).status;
    const listed = async () => (await s3(creds, { method: 'GET', path: `/${bucket}`, query: 'list-type=2' })).body.toString();

    before(async () => {
      assert.equal((await s3(creds, { method: 'PUT', path: `/${bucket}` })).status, 200);
    });

    it('a signed streaming upload is stored; the same upload with one byte changed after signing is SignatureDoesNotMatch', async () => {
      const data = randomBytes(200_000);
      const ok = signedChunkedPut(creds, `/${bucket}/streamed`, data, 65536);
      const r = await send(creds, 'PUT', `/${bucket}/streamed`, undefined, ok.headers, ok.body);
      assert.equal(r.status, 200, r.body.toString());
      const got = await s3(creds, { method: 'GET', path: `/${bucket}/streamed` });
      assert.ok(got.body.equals(data));
      let n = 0;
      const bad = signedChunkedPut(creds, `/${bucket}/tampered`, data, 65536, (chunk) => {
        if (n++ === 2) chunk[10]! ^= 0xff;
      });
      const refused = await send(creds, 'PUT', `/${bucket}/tampered`, undefined, bad.headers, bad.body);
      assert.equal(refused.status, 403);
      assert.match(refused.body.toString(), /<Code>SignatureDoesNotMatch<\/Code>/);
      assert.match(refused.body.toString(), /<RequestId>[0-9A-F]{16}<\/RequestId>/);
      assert.equal(await head('tampered'), 404);
      assert.doesNotMatch(await listed(), /tampered/);
    });

    it('a body not matching its Content-MD5 is BadDigest, one not matching its signed SHA-256 is XAmzContentSHA256Mismatch', async () => {
      const body = Buffer.from('the real body');
      const wrongMd5 = createHash('md5').update('another body').digest('base64');
      const r = await s3(creds, { method: 'PUT', path: `/${bucket}/md5`, body, headers: { 'content-md5': wrongMd5 } });
      assert.equal(r.status, 400);
      assert.match(r.body.toString(), /<Code>BadDigest<\/Code>/);
      assert.equal(await head('md5'), 404);
      const right = await s3(creds, { method: 'PUT', path: `/${bucket}/md5`, body, headers: { 'content-md5': createHash('md5').update(body).digest('base64') } });
      assert.equal(right.status, 200);
      assert.equal(right.headers.etag, `"${createHash('md5').update(body).digest('hex')}"`);
      const s = sign(creds, { method: 'PUT', path: `/${bucket}/sha`, payloadHash: createHash('sha256').update('something else').digest('hex'), headers: { 'content-length': String(body.length) } });
      const mismatch = await send(creds, 'PUT', `/${bucket}/sha`, undefined, s.headers, body);
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.body.toString(), /XAmzContentSHA256Mismatch/);
      assert.equal(await head('sha'), 404);
    });

    it('DeleteObjects with malformed, oversized or DOCTYPE XML is MalformedXML and deletes nothing', async () => {
      const keep = await s3(creds, { method: 'PUT', path: `/${bucket}/keep`, body: Buffer.from('k') });
      assert.equal(keep.status, 200);
      const bodies = [
        Buffer.from('<Delete><Object><Key>keep</Key></Object>'),
        Buffer.from(`<Delete>${'<Object><Key>keep</Key></Object>'.repeat(100_000)}</Delete>`),
        Buffer.from('<!DOCTYPE d [<!ENTITY k "keep">]><Delete><Object><Key>&k;</Key></Object></Delete>'),
        Buffer.from(`<Delete>${'<Object><Key>keep</Key></Object>'.repeat(1001)}</Delete>`),
      ];
      for (const body of bodies) {
        const r = await s3(creds, { method: 'POST', path: `/${bucket}`, query: 'delete=', body, headers: { 'content-md5': createHash('md5').update(body).digest('base64') } });
        assert.equal(r.status, 400, `body of ${body.length} bytes`);
        assert.match(r.body.toString(), /<Code>MalformedXML<\/Code>/);
      }
      assert.equal(await head('keep'), 200);
    });

    it('a request signed 20 minutes ago is RequestTimeTooSkewed; an unsupported sub-resource is NotImplemented as S3 XML', async () => {
      const r = await s3(creds, { method: 'GET', path: `/${bucket}`, date: new Date(Date.now() - 20 * 60_000) });
      assert.equal(r.status, 403);
      assert.match(r.body.toString(), /<Code>RequestTimeTooSkewed<\/Code>/);
      const policy = await s3(creds, { method: 'GET', path: `/${bucket}`, query: 'policy=' });
      assert.equal(policy.status, 501);
      assert.match(policy.body.toString(), /<Code>NotImplemented<\/Code>/);
      const missing = await s3(creds, { method: 'GET', path: '/no-such-bucket-here/k' });
      assert.equal(missing.status, 404);
      assert.match(missing.body.toString(), /<Code>NoSuchBucket<\/Code>/);
      const noKey = await s3(creds, { method: 'GET', path: `/${bucket}/no-such-key` });
      assert.match(noKey.body.toString(), /<Code>NoSuchKey<\/Code>/);
      const range = await s3(creds, { method: 'GET', path: `/${bucket}/keep`, headers: { range: 'bytes=5-' } });
      assert.equal(range.status, 416);
      assert.match(range.body.toString(), /<Code>InvalidRange<\/Code>/);
    });

    it('a CORS preflight (OPTIONS) is 400 BadRequest without Origin and 403 with one: no CORS configuration is kept', async () => {
      const noOrigin = await send(creds, 'OPTIONS', `/${bucket}/keep`, undefined, {});
      assert.equal(noOrigin.status, 400);
      assert.match(noOrigin.body.toString(), /<Code>BadRequest<\/Code>/);
      const withOrigin = await send(creds, 'OPTIONS', `/${bucket}/keep`, undefined, { origin: 'http://example.test', 'access-control-request-method': 'GET' });
      assert.equal(withOrigin.status, 403);
      assert.match(withOrigin.body.toString(), /<Code>AccessDenied<\/Code>/);
      assert.equal(await head('keep'), 200);
    });

    it('stored Cache-Control and Expires come back on GET and on a 304 with the ETag; CreateBucket again by its maker is 200', async () => {
      const expires = 'Thu, 01 Jan 2037 00:00:00 GMT';
      const put = await s3(creds, { method: 'PUT', path: `/${bucket}/cached`, body: Buffer.from('bar'), headers: { 'cache-control': 'public, max-age=14400', expires } });
      assert.equal(put.status, 200);
      const etag = put.headers.etag as string;
      const got = await s3(creds, { method: 'GET', path: `/${bucket}/cached` });
      assert.equal(got.headers['cache-control'], 'public, max-age=14400');
      assert.equal(got.headers.expires, expires);
      const notModified = await s3(creds, { method: 'GET', path: `/${bucket}/cached`, headers: { 'if-none-match': etag } });
      assert.equal(notModified.status, 304);
      assert.equal(notModified.headers.etag, etag);
      assert.equal(notModified.headers['cache-control'], 'public, max-age=14400');
      assert.equal(notModified.body.length, 0);
      assert.equal((await s3(creds, { method: 'PUT', path: `/${bucket}` })).status, 200);
    });

    it('listing V1 and V2 by hand: delimiter, markers, continuation, encoding-type=url; virtual-host style; a bucket made erasure-coded', async () => {
      const keys = ['l/a b', 'l/c+d', 'l/dir/1', 'l/dir/2', 'l/e', 'l/é'];
      for (const k of keys) assert.equal((await s3(creds, { method: 'PUT', path: `/${bucket}/${encodeURIComponent(k).replace(/%2F/g, '/')}`, body: Buffer.from(k) })).status, 200);
      const v2 = (await s3(creds, { method: 'GET', path: `/${bucket}`, query: 'delimiter=%2F&encoding-type=url&list-type=2&max-keys=2&prefix=l%2F' })).body.toString();
      assert.match(v2, /<KeyCount>2<\/KeyCount>/);
      assert.match(v2, /<Key>l\/a%20b<\/Key><.*<Key>l\/c%2Bd<\/Key>/s);
      assert.match(v2, /<IsTruncated>true<\/IsTruncated>/);
      const token = /<NextContinuationToken>([^<]+)</.exec(v2)![1]!;
      const v2b = (await s3(creds, { method: 'GET', path: `/${bucket}`, query: `continuation-token=${encodeURIComponent(token)}&delimiter=%2F&list-type=2&prefix=l%2F` })).body.toString();
      assert.match(v2b, /<CommonPrefixes><Prefix>l\/dir\/<\/Prefix><\/CommonPrefixes>/);
      assert.match(v2b, /<Key>l\/e<\/Key>.*<Key>l\/é<\/Key>/s);
      assert.match(v2b, /<IsTruncated>false<\/IsTruncated>/);
      const v1 = (await s3(creds, { method: 'GET', path: `/${bucket}`, query: 'delimiter=%2F&marker=l%2Fc%2Bd&max-keys=1&prefix=l%2F' })).body.toString();
      assert.match(v1, /<Marker>l\/c\+d<\/Marker>/);
      assert.match(v1, /<NextMarker>l\/dir\/<\/NextMarker>/);
      assert.match(v1, /<CommonPrefixes><Prefix>l\/dir\/<\/Prefix>/);
      const versions = (await s3(creds, { method: 'GET', path: `/${bucket}`, query: 'prefix=l%2Fe&versions=' })).body.toString();
      assert.match(versions, /<Version><Key>l\/e<\/Key><VersionId>null<\/VersionId><IsLatest>true<\/IsLatest>/);
      assert.match((await s3(creds, { method: 'GET', path: `/${bucket}`, query: 'versioning=' })).body.toString(), /<VersioningConfiguration/);
      // Virtual-host style: the bucket is in the Host header.
      const vhost = { ...creds, endpoint: `${bucket}.s3.tessera.test:${endpoint.split(':')[1]}`, connect: endpoint };
      const viaHost = await s3(vhost, { method: 'GET', path: '/l/e' });
      assert.equal(viaHost.status, 200);
      assert.equal(viaHost.body.toString(), 'l/e');
      // A bucket created erasure-coded: its policy is what the API reports, and objects round-trip.
      assert.equal((await s3(creds, { method: 'PUT', path: '/coded', headers: { 'x-tessera-redundancy': '2+1' } })).status, 200);
      const b = await cluster.node(0).client.json<{ buckets: Array<{ name: string; policy: unknown }> }>('/api/v1/buckets');
      assert.deepEqual(b.buckets.find((x) => x.name === 'coded')?.policy, { kind: 'ec', k: 2, m: 1 });
      const data = randomBytes(3 << 20);
      assert.equal((await s3(creds, { method: 'PUT', path: '/coded/obj', body: data })).status, 200);
      assert.ok((await s3(creds, { method: 'GET', path: '/coded/obj' })).body.equals(data));
      const badPolicy = await s3(creds, { method: 'PUT', path: '/coded2', headers: { 'x-tessera-redundancy': 'lots' } });
      assert.equal(badPolicy.status, 400);
      assert.match(badPolicy.body.toString(), /InvalidArgument/);
    });

    it('Expect: 100-continue: a refused upload is answered before its body is sent', async () => {
      const body = Buffer.alloc(1 << 20, 1);
      const s = sign({ ...creds, secret: 'not-the-secret' }, { method: 'PUT', path: `/${bucket}/continue`, body, headers: { 'content-length': String(body.length), expect: '100-continue' } });
      const { request } = await import('node:http');
      const result = await new Promise<{ status: number; sentBody: boolean }>((resolve, reject) => {
        let sentBody = false;
        const req = request({ host: '127.0.0.1', port: Number(endpoint.split(':')[1]), method: 'PUT', path: `/${bucket}/continue`, headers: s.headers });
        req.on('continue', () => {
          sentBody = true;
          req.end(body);
        });
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, sentBody }));
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.equal(result.status, 403);
      assert.equal(result.sentBody, false, 'the server refused before asking for the body');
      const ok = sign(creds, { method: 'PUT', path: `/${bucket}/continue`, body, headers: { 'content-length': String(body.length), expect: '100-continue' } });
      const r = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: Number(endpoint.split(':')[1]), method: 'PUT', path: `/${bucket}/continue`, headers: ok.headers });
        req.on('continue', () => req.end(body));
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.equal(r, 200);
      assert.equal(await head('continue'), 200);
    });
  });
});
