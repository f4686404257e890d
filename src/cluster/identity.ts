/**
 * A node's identity and cluster membership secrets on disk.
 *
 *   DATA/identity.json  Ed25519 key, self-signed certificate, node id      (0600)
 *   DATA/cluster.json   cluster id, cluster secret, data key (optional)     (0600)
 *   DATA/api-token      bearer token for the node's HTTP API               (0600)
 *
 * A join token carries the cluster id and secrets so a new node can be admitted. A token made
 * without the data key admits a storage-only node, which then never sees plaintext.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat, access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { TesseraError, badInput } from '../errors.js';
import { createFileDurably, pathExists } from '../disk-io.js';
import { generateCredentials, type NodeCredentials } from '../net/index.js';

import { API_TOKEN_FILE, CLUSTER_FILE, IDENTITY_FILE, MAX_JOIN_TOKEN_CHARS } from './data-files.js';

export { API_TOKEN_FILE, CLUSTER_FILE, IDENTITY_FILE };
const SECRET_BYTES = 32;
const JOIN_TOKEN_PREFIX = 'tsrj1_';
/** Permission bits of a data directory: its files are the node's secrets, so only the owner. */
export const DATA_DIR_MODE = 0o700;

export interface ClusterKeys {
  clusterId: string;
  clusterSecret: Buffer;
  /** Absent on a storage-only node. */
  dataKey?: Buffer;
  /**
   * The public key that checks proofs of destructive messages (content/authority.ts), derived
   * from the data key; a storage-only node is given it, since it cannot derive it.
   */
  authorityKey?: Buffer;
  /** Set while the cluster secret is rotated (tessera secret rotate): the old secret, still accepted. */
  previousClusterSecret?: Buffer;
}

export interface NodeIdentity {
  credentials: NodeCredentials;
  cluster: ClusterKeys;
  apiToken: string;
}

const b64 = z.string().max(4096).regex(/^[A-Za-z0-9+/=_-]*$/);
const identitySchema = z.object({
  nodeId: z.string().regex(/^[0-9a-f]{40}$/),
  privateKeyPem: z.string().max(8192),
  certificatePem: z.string().max(16384),
  publicKey: b64,
});
const clusterSchema = z.object({
  clusterId: z.string().regex(/^[0-9a-f]{32}$/),
  clusterSecret: b64,
  dataKey: b64.optional(),
  authorityKey: b64.optional(),
  previousClusterSecret: b64.optional(),
});
const tokenSchema = z.object({ v: z.literal(1), c: z.string().regex(/^[0-9a-f]{32}$/), s: b64, k: b64.optional(), a: b64.optional() });

function decodeSecret(text: string, what: string): Buffer {
  const buf = Buffer.from(text, 'base64url');
  if (buf.length !== SECRET_BYTES) throw badInput(`${what} must be ${SECRET_BYTES} bytes, found ${buf.length}`);
  return buf;
}

export function newClusterKeys(): ClusterKeys {
  return { clusterId: randomBytes(16).toString('hex'), clusterSecret: randomBytes(SECRET_BYTES), dataKey: randomBytes(SECRET_BYTES) };
}

export function formatJoinToken(keys: ClusterKeys, opts: { storageOnly?: boolean } = {}): string {
  const body: z.infer<typeof tokenSchema> = { v: 1, c: keys.clusterId, s: keys.clusterSecret.toString('base64url') };
  if (keys.dataKey && !opts.storageOnly) body.k = keys.dataKey.toString('base64url');
  else if (keys.authorityKey) body.a = keys.authorityKey.toString('base64url');
  return JOIN_TOKEN_PREFIX + Buffer.from(JSON.stringify(body)).toString('base64url');
}

export function parseJoinToken(token: string): ClusterKeys {
  const t = token.trim();
  if (t.length > MAX_JOIN_TOKEN_CHARS) throw badInput(`join token is ${t.length} characters, longer than any valid token`);
  if (!t.startsWith(JOIN_TOKEN_PREFIX)) throw badInput(`join token must start with '${JOIN_TOKEN_PREFIX}' (get one with 'tessera token --data DIR' on a member)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(t.slice(JOIN_TOKEN_PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw badInput('join token is damaged: its body is not valid');
  }
  const r = tokenSchema.safeParse(parsed);
  if (!r.success) throw badInput('join token is damaged: its fields are not valid');
  const keys: ClusterKeys = { clusterId: r.data.c, clusterSecret: decodeSecret(r.data.s, 'cluster secret') };
  if (r.data.k !== undefined) keys.dataKey = decodeSecret(r.data.k, 'data key');
  else if (r.data.a !== undefined) keys.authorityKey = decodeSecret(r.data.a, 'authority key');
  return keys;
}

async function writeSecretFile(path: string, content: string): Promise<void> {
  await createFileDurably(path, content, 0o600);
}

/** Creates a node identity in `dataDir`, for a new cluster or one given by `keys`. */
export async function initDataDir(dataDir: string, keys: ClusterKeys): Promise<NodeIdentity> {
  await mkdir(dataDir, { recursive: true, mode: DATA_DIR_MODE });
  // mkdir's mode only applies to a directory it creates; one that existed keeps whatever it had.
  const st = await stat(dataDir);
  if ((st.mode & 0o777) !== DATA_DIR_MODE) {
    try {
      await chmod(dataDir, DATA_DIR_MODE);
    } catch (e) {
      throw new TesseraError('IO', `cannot restrict data directory ${dataDir} to its owner (${(e as Error).message}); run 'chmod 700 ${dataDir}' as its owner, or choose another --data directory`);
    }
  }
  if (await pathExists(join(dataDir, IDENTITY_FILE))) {
    throw new TesseraError('CONFLICT', `${dataDir} already holds a node identity; refusing to overwrite it (use another --data directory)`);
  }
  const credentials = await generateCredentials();
  const apiToken = randomBytes(24).toString('base64url');
  await writeSecretFile(join(dataDir, CLUSTER_FILE), JSON.stringify({
    clusterId: keys.clusterId,
    clusterSecret: keys.clusterSecret.toString('base64url'),
    ...(keys.dataKey ? { dataKey: keys.dataKey.toString('base64url') } : {}),
    ...(!keys.dataKey && keys.authorityKey ? { authorityKey: keys.authorityKey.toString('base64url') } : {}),
  }, null, 2) + '\n');
  await writeSecretFile(join(dataDir, API_TOKEN_FILE), apiToken + '\n');
  // Loaded here only: client commands read this module for file names and must start fast.
  const { ensureSelfSignedApiCert } = await import('../net/index.js');
  await ensureSelfSignedApiCert(dataDir);
  // The identity file goes last: its presence is what marks a data dir as initialised.
  await writeSecretFile(join(dataDir, IDENTITY_FILE), JSON.stringify({
    nodeId: credentials.nodeId,
    privateKeyPem: credentials.privateKeyPem,
    certificatePem: credentials.certificatePem,
    publicKey: credentials.publicKey.toString('base64url'),
  }, null, 2) + '\n');
  return { credentials, cluster: keys, apiToken };
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TesseraError('NOT_FOUND', `${path} is missing: run 'tessera init --data DIR' first`);
    if (code === 'EACCES') throw new TesseraError('IO', `cannot read ${what} at ${path}: permission denied`);
    throw new TesseraError('IO', `cannot read ${what} at ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new TesseraError('CORRUPT', `${what} at ${path} is not valid JSON`);
  }
}

/** Loads the identity of an initialised data dir, with clear errors for every way it can be wrong. */
export async function loadDataDir(dataDir: string): Promise<NodeIdentity> {
  let st;
  try {
    st = await stat(dataDir);
  } catch {
    throw new TesseraError('NOT_FOUND', `data directory ${dataDir} does not exist: run 'tessera init --data ${dataDir}' first`);
  }
  if (!st.isDirectory()) throw badInput(`--data ${dataDir} is not a directory`);
  if ((st.mode & 0o077) !== 0) {
    // Group or others could read the cluster secret, the data key and the API token.
    throw new TesseraError('AUTH', `data directory ${dataDir} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}); run 'chmod 700 ${dataDir}' and rotate the cluster secret if others may have read it`);
  }
  try {
    await access(dataDir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch {
    throw new TesseraError('IO', `data directory ${dataDir} is not readable and writable by this user`);
  }
  const id = identitySchema.safeParse(await readJson(join(dataDir, IDENTITY_FILE), 'node identity'));
  if (!id.success) throw new TesseraError('CORRUPT', `node identity in ${dataDir} is damaged`);
  const cl = clusterSchema.safeParse(await readJson(join(dataDir, CLUSTER_FILE), 'cluster keys'));
  if (!cl.success) throw new TesseraError('CORRUPT', `cluster keys in ${dataDir} are damaged`);
  const cluster: ClusterKeys = { clusterId: cl.data.clusterId, clusterSecret: decodeSecret(cl.data.clusterSecret, 'cluster secret') };
  if (cl.data.dataKey !== undefined) cluster.dataKey = decodeSecret(cl.data.dataKey, 'data key');
  if (cl.data.authorityKey !== undefined) cluster.authorityKey = decodeSecret(cl.data.authorityKey, 'authority key');
  if (cl.data.previousClusterSecret !== undefined) cluster.previousClusterSecret = decodeSecret(cl.data.previousClusterSecret, 'previous cluster secret');
  let apiToken: string;
  try {
    apiToken = (await readFile(join(dataDir, API_TOKEN_FILE), 'utf8')).trim();
  } catch {
    throw new TesseraError('NOT_FOUND', `API token file is missing from ${dataDir}`);
  }
  const credentials: NodeCredentials = {
    nodeId: id.data.nodeId,
    privateKeyPem: id.data.privateKeyPem,
    certificatePem: id.data.certificatePem,
    publicKey: Buffer.from(id.data.publicKey, 'base64url'),
  };
  return { credentials, cluster, apiToken };
}

