/**
 * Rotation of the cluster secret with real node processes and the real command: each of three
 * nodes in turn is stopped, rotated with `tessera secret rotate`, and started again while the
 * others still hold only the old secret; then each is finished the same way. The cluster stays
 * whole throughout, a file stored before reads back after, and at the end a member holding only
 * the old secret is refused admission while one holding the new secret is admitted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';
import { admittedPeer } from '../helpers/admitted-peer.js';
import { readAll } from '../helpers/read-all.js';

const NODES = 3;
const FILE_BYTES = 200_000;

function cli(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args, '--json'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TESSERA_API: '' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('the cluster secret rotates node by node while the cluster stays whole', async (t) => {
  const cluster = await LocalCluster.create({ nodes: NODES, logLevel: 'info' });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  await cluster.waitForMembers({ alive: NODES });
  const data = randomBytes(FILE_BYTES);
  const { fileId } = await cluster.node(0).client.put(Readable.from([data]), { name: 'before.bin', replicas: 3 });
  const secretFile = join(cluster.dir, 'new.secret');

  const step = async (i: number, args: string[], key: string) => {
    await cluster.kill(i, 'SIGTERM');
    assert.equal(cli(['secret', ...args, '--data', cluster.node(i).dataDir])[key], true, `${args[0]} changed node ${i}`);
    await cluster.start(i);
    // The rotated node and the ones not yet rotated must see each other again.
    await cluster.waitForMembers({ alive: NODES });
  };
  for (let i = 0; i < NODES; i++) await step(i, ['rotate', '--secret-file', secretFile], 'rotated');
  assert.equal(cli(['secret', 'rotate', '--secret-file', secretFile, '--data', cluster.node(0).dataDir]).rotated, false, 'rotating again to the same secret changes nothing');
  for (let i = 0; i < NODES; i++) await step(i, ['finish'], 'finished');

  const cfg = JSON.parse(await readFile(join(cluster.node(1).dataDir, 'cluster.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.previousClusterSecret, undefined);
  const newSecret = Buffer.from((await readFile(secretFile, 'utf8')).trim(), 'base64url');
  assert.ok(Buffer.from(String(cfg.clusterSecret), 'base64url').equals(newSecret), 'every node holds the new secret');
  assert.ok(!newSecret.equals(cluster.keys.clusterSecret));

  const stale = await admittedPeer(join(cluster.dir, 'old-secret'), cluster.keys);
  await assert.rejects(stale.dial(cluster.node(1).listen), (e: Error & { code?: string }) => e.code === 'AUTH' && /cluster secret|admission/.test(e.message));
  const current = await admittedPeer(join(cluster.dir, 'new-secret'), { ...cluster.keys, clusterSecret: newSecret });
  (await current.dial(cluster.node(1).listen)).socket.destroy();

  for (let i = 0; i < NODES; i++) assert.ok((await readAll(cluster.node(i).client, fileId)).equals(data), `node ${i} reads the file stored before`);
});
