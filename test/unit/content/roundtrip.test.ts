import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  ManifestBuilder,
  ManifestReader,
  MIN_CHUNK_BYTES,
  chunkStream,
  decodeShards,
  decryptChunk,
  deriveClusterKeys,
  encodeShards,
  encryptChunk,
  formatFileId,
} from '../../../src/content/index.js';

test('stream → chunks → encrypted store → manifest → file id → byte range back', async () => {
  const keys = deriveClusterKeys(randomBytes(32));
  const file = randomBytes(37 * MIN_CHUNK_BYTES + 123);
  const store = new Map<string, Buffer>();
  const put = (c: { id: Buffer; data: Buffer }) => store.set(c.id.toString('hex'), Buffer.from(c.data));
  const builder = new ManifestBuilder({ manifestSecret: keys.manifestSecret, chunkSize: MIN_CHUNK_BYTES, policy: { kind: 'replicas', r: 3, w: 2 }, pageEntries: 4 });
  for await (const chunk of chunkStream(Readable.from([file.subarray(0, 10_000), file.subarray(10_000)]), MIN_CHUNK_BYTES)) {
    const enc = encryptChunk(chunk, keys.convergenceSecret);
    put(enc);
    for (const page of builder.add({ id: enc.id, key: enc.key, size: chunk.length })) put(page);
  }
  const built = builder.finish();
  for (const page of built.pages) put(page);
  put(built.root);
  const fileId = formatFileId(built.root.id, built.root.key);

  const fetch = async (id: Buffer) => {
    const data = store.get(id.toString('hex'));
    if (!data) throw new Error('missing chunk');
    return data;
  };
  const reader = await ManifestReader.open(fileId, fetch);
  assert.equal(reader.info.fileSize, file.length);
  const start = 5 * MIN_CHUNK_BYTES + 17;
  const end = 30 * MIN_CHUNK_BYTES + 1;
  const parts: Buffer[] = [];
  for await (const ref of reader.refs(start, end)) {
    const plain = decryptChunk(await fetch(ref.id), ref.key, ref.id);
    assert.equal(plain.length, ref.size);
    parts.push(plain.subarray(Math.max(0, start - ref.offset), Math.min(ref.size, end - ref.offset)));
  }
  assert.deepEqual(Buffer.concat(parts), file.subarray(start, end));
});

test('an encrypted chunk survives erasure coding with shards lost', async () => {
  const enc = encryptChunk(randomBytes(1 << 20), randomBytes(32));
  const { shards } = await encodeShards(enc.data, { k: 4, m: 2 });
  const data = await decodeShards([shards[0], null, shards[2], null, shards[4], shards[5]], { k: 4, m: 2 }, enc.data.length);
  assert.equal(decryptChunk(data, enc.key, enc.id).length, 1 << 20);
});
