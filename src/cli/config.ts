/**
 * The node's config file: `tessera.json` in the data directory, or the file given by `--config`.
 * It holds the same settings as `tessera node`'s flags (in camelCase); a flag given on the command
 * line wins over the file, and the file wins over the built-in defaults.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { TesseraError, badInput, notFound } from '../errors.js';

import { CONFIG_FILE, LOG_LEVELS } from './config-names.js';

export { CONFIG_FILE, LOG_LEVELS };
/** A config file is a few hundred bytes; a bigger one is a mistake, not a config. */
export const MAX_CONFIG_BYTES = 64 << 10;

const ms = z.number().int().min(1).max(600_000);
const hostPort = z.string().min(3).max(300);

export const nodeConfigSchema = z
  .object({
    listen: hostPort,
    api: hostPort,
    advertise: hostPort,
    bootstrap: z.union([z.string().max(10_000), z.array(hostPort).max(256)]),
    zone: z.string().min(1).max(64),
    memory: z.boolean(),
    quota: z.union([z.string().max(32), z.number().int().positive()]),
    logLevel: z.enum(LOG_LEVELS),
    probeIntervalMs: ms,
    suspicionTimeoutMs: ms,
    gcGraceMs: z.number().int().min(0),
    antiEntropyMs: ms,
    cors: z.string().min(1).max(300),
  })
  .partial()
  .strict();

export type NodeFileConfig = z.infer<typeof nodeConfigSchema>;

/**
 * Reads the config file. `explicit` (from --config) must exist; the default file in the data
 * directory is optional.
 */
export async function loadNodeConfig(dataDir: string, explicit?: string): Promise<{ path: string | null; config: NodeFileConfig }> {
  const path = explicit ?? join(dataDir, CONFIG_FILE);
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new TesseraError('IO', `cannot read the config file ${path}: ${(err as Error).message}`);
    if (explicit !== undefined) throw notFound(`config file ${path} does not exist; check the --config path`);
    return { path: null, config: {} };
  }
  if (size > MAX_CONFIG_BYTES) throw badInput(`config file ${path} is ${size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw badInput(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const r = nodeConfigSchema.safeParse(parsed);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.join('.') || '(top level)';
    const hint = issue?.code === 'unrecognized_keys' ? ` (known keys: ${Object.keys(nodeConfigSchema.shape).join(', ')})` : '';
    throw badInput(`config file ${path}: ${where}: ${issue?.message ?? 'invalid'}${hint}`);
  }
  return { path, config: r.data };
}
