/**
 * Multipart uploads on real nodes leave nothing behind: an upload abandoned past the abandon
 * period is aborted by the sweep and its parts' chunks are deleted; removing a completed
 * object removes the parts it was stitched from. Both with short periods set on the nodes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { waitFor } from '../../src/cli/local-cluster.js';
import { s3, type S3Creds } from '../helpers/s3-client.js';
import { startS3Cluster, type S3Cluster } from '../helpers/s3-cluster.js';

/** Long enough for the second test to complete its upload on a loaded machine, short enough to wait for. */
const ABANDON_MS = 20_000;
let c: S3Cluster;
let creds: S3Creds;

before(async () => {
  c = await startS3Cluster({ nodes: 3, nodeArgs: ['--multipart-abandon-ms', String(ABANDON_MS), '--gc-grace-ms', '0'] });
  const key = await c.createKey('gc');
  creds = { endpoint: `${c.host}:${c.port}`, accessKeyId: key.accessKeyId, secret: key.secretKey };
  assert.equal((await s3(creds, { method: 'PUT', path: '/gc-bucket' })).status, 200);
});

after(() => c?.destroy());

async function chunksStored(): Promise<number> {
  let n = 0;
  for (const node of c.cluster.nodes) n += (await node.client.json<{ ids: string[] }>('/api/v1/chunks?limit=10000')).ids.length;
  return n;
}

async function createUpload(key: string): Promise<string> {
  const r = await s3(creds, { method: 'POST', path: `/gc-bucket/${key}`, query: 'uploads=' });
  assert.equal(r.status, 200, r.body.toString());
  return /<UploadId>([0-9a-f]+)<\/UploadId>/.exec(r.body.toString())![1]!;
}

async function putPart(key: string, uploadId: string, n: number, body: Buffer): Promise<string> {
  const r = await s3(creds, { method: 'PUT', path: `/gc-bucket/${key}`, query: `partNumber=${n}&uploadId=${uploadId}`, body });
  assert.equal(r.status, 200, r.body.toString());
  return String(r.headers['etag']);
}

test('an abandoned upload is aborted by the sweep and its chunks are deleted', { timeout: 120_000 }, async () => {
  const before = await chunksStored();
  const uploadId = await createUpload('left-behind');
  await putPart('left-behind', uploadId, 1, randomBytes(3 << 20));
  assert.ok((await chunksStored()) > before, 'the part is stored');
  await waitFor('the sweep to abort the abandoned upload', 90_000, async () => {
    const r = await s3(creds, { method: 'GET', path: '/gc-bucket', query: 'uploads=' });
    return r.status === 200 && !r.body.toString().includes(uploadId);
  });
  const parts = await s3(creds, { method: 'GET', path: '/gc-bucket/left-behind', query: `uploadId=${uploadId}` });
  assert.equal(parts.status, 404);
  assert.match(parts.body.toString(), /NoSuchUpload/);
  await waitFor('every chunk of the part to be deleted', 60_000, async () => (await chunksStored()) === before);
});

test('removing a completed multipart object removes its parts; their chunks are deleted', { timeout: 120_000 }, async () => {
  const before = await chunksStored();
  const uploadId = await createUpload('whole');
  const a = randomBytes(5 << 20);
  const b = randomBytes(1 << 20);
  const e2 = await putPart('whole', uploadId, 2, b);
  const e1 = await putPart('whole', uploadId, 1, a);
  const body = Buffer.from(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>${e2}</ETag></Part></CompleteMultipartUpload>`);
  const done = await s3(creds, { method: 'POST', path: '/gc-bucket/whole', query: `uploadId=${uploadId}`, body });
  assert.equal(done.status, 200, done.body.toString());
  const got = await s3(creds, { method: 'GET', path: '/gc-bucket/whole' });
  assert.ok(got.body.equals(Buffer.concat([a, b])));
  assert.ok((await chunksStored()) > before);
  assert.equal((await s3(creds, { method: 'DELETE', path: '/gc-bucket/whole' })).status, 204);
  await waitFor('the parts and the composite root to be deleted', 60_000, async () => (await chunksStored()) === before);
});
