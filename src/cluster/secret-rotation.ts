/**
 * Rotation of the cluster secret, one node at a time, while the cluster keeps running. Admission
 * proves every secret a node holds (net/handshake.ts): a rotated node proves and accepts the new
 * secret and the old one, so it admits, and is admitted by, nodes not yet rotated. Once every
 * node is rotated, `finish` drops the old secret node by node; a node still holding only the old
 * one is refused from then on, as is anyone who learned only the old one.
 *
 * Each step rewrites DATA/cluster.json (0600, replaced atomically) and takes effect when the
 * node next starts. The data key is not touched: it seals everything stored (see
 * docs/security.md for why it cannot be rotated in place).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TesseraError, badInput } from '../errors.js';
import { createFileDurably, pathExists, replaceFileDurably } from '../disk-io.js';
import { CLUSTER_FILE } from './data-files.js';
import { loadDataDir } from './identity.js';

const SECRET_BYTES = 32;
const SECRET_FILE_MAX_CHARS = 256;

export type RotationStep = 'done' | 'already';

async function rewriteCluster(dataDir: string, change: (c: Record<string, unknown>) => void): Promise<void> {
  const path = join(dataDir, CLUSTER_FILE);
  const c = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  change(c);
  await replaceFileDurably(path, Buffer.from(JSON.stringify(c, null, 2) + '\n'), 0o600);
}

/**
 * Makes `next` the secret this node proves first, keeping its current one as the previous
 * (still proved and accepted). Idempotent for the same `next`; refuses a second rotation before
 * the first is finished.
 */
export async function rotateClusterSecret(dataDir: string, next: Buffer): Promise<RotationStep> {
  if (next.length !== SECRET_BYTES) throw badInput(`a cluster secret is ${SECRET_BYTES} bytes, found ${next.length}`);
  const { cluster } = await loadDataDir(dataDir);
  if (cluster.clusterSecret.equals(next)) return 'already';
  if (cluster.previousClusterSecret !== undefined) {
    throw new TesseraError('CONFLICT', `a rotation of the cluster secret is already under way in ${dataDir}; finish it on every node ('tessera secret finish --data DIR') before starting another`);
  }
  await rewriteCluster(dataDir, (c) => {
    c.previousClusterSecret = cluster.clusterSecret.toString('base64url');
    c.clusterSecret = next.toString('base64url');
  });
  return 'done';
}

/** Drops the previous secret: from its next start the node proves and accepts only the new one. */
export async function finishClusterSecretRotation(dataDir: string): Promise<RotationStep> {
  const { cluster } = await loadDataDir(dataDir);
  if (cluster.previousClusterSecret === undefined) return 'already';
  await rewriteCluster(dataDir, (c) => { delete c.previousClusterSecret; });
  return 'done';
}

/**
 * The new secret every node of a rotation must share: read from `path`, or made (32 random
 * bytes, base64url) and written there 0600 when the file does not exist yet.
 */
export async function secretFromFile(path: string): Promise<{ secret: Buffer; made: boolean }> {
  if (!(await pathExists(path))) {
    const secret = randomBytes(SECRET_BYTES);
    await createFileDurably(path, secret.toString('base64url') + '\n', 0o600);
    return { secret, made: true };
  }
  const text = (await readFile(path, 'utf8')).trim();
  const secret = Buffer.from(text, 'base64url');
  if (text.length > SECRET_FILE_MAX_CHARS || secret.length !== SECRET_BYTES) {
    throw badInput(`${path} does not hold a cluster secret (${SECRET_BYTES} bytes, base64url); delete it to have a new one made`);
  }
  return { secret, made: false };
}
