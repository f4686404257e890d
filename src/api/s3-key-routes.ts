/**
 * HTTP routes that manage S3 access keys (`tessera s3 key create/ls/rm`). Every one needs the
 * node's API token, reads included: a key list says which buckets exist and who may reach them.
 */
import { badInput, TesseraError } from '../errors.js';
import { ACCESS_KEY_PERMISSIONS, type AccessKeyPermission, type AccessKeyTable } from '../tables/index.js';
import { readJsonBody, sendJson } from './http-util.js';
import type { Route } from './server.js';

export const S3_KEYS_PATH = '/api/v1/s3/keys';

function bucketsOf(v: unknown): Record<string, AccessKeyPermission[]> | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw badInput('"buckets" must be {"BUCKET": ["read", "write", "owner"]} or null');
  const out: Record<string, AccessKeyPermission[]> = {};
  for (const [name, perms] of Object.entries(v as Record<string, unknown>)) {
    if (!Array.isArray(perms) || perms.some((p) => !(ACCESS_KEY_PERMISSIONS as readonly unknown[]).includes(p))) {
      throw badInput(`bucket '${name.slice(0, 64)}': permissions are a list of ${ACCESS_KEY_PERMISSIONS.join(', ')}`);
    }
    out[name] = perms as AccessKeyPermission[];
  }
  return out;
}

export function s3KeyRoutes(keys: AccessKeyTable | undefined): Route[] {
  const k = (): AccessKeyTable => {
    if (keys === undefined) throw new TesseraError('AUTH', 'this node is storage-only (no data key) and holds no S3 keys; ask a node that has the data key');
    return keys;
  };
  return [
    {
      method: 'POST', path: S3_KEYS_PATH, write: true,
      handle: async ({ req, res }) => {
        const body = (await readJsonBody(req)) as { name?: unknown; buckets?: unknown } | null;
        if (body?.name !== undefined && typeof body.name !== 'string') throw badInput('"name" must be a string');
        const created = await k().create({ ...(typeof body?.name === 'string' ? { name: body.name } : {}), buckets: bucketsOf(body?.buckets) });
        sendJson(res, 201, created);
      },
    },
    {
      // Listed as a write: only the token holder sees which keys exist.
      method: 'GET', path: S3_KEYS_PATH, write: true,
      handle: async ({ res, url }) => {
        const token = url.searchParams.get('token');
        const page = await k().list(token ? { token } : {});
        sendJson(res, 200, { keys: page.items, token: page.token });
      },
    },
    {
      method: 'DELETE', path: `${S3_KEYS_PATH}/:id`, write: true,
      handle: async ({ res, params }) => {
        const id = params.id ?? '';
        if (!(await k().remove(id))) throw new TesseraError('NOT_FOUND', `no S3 key '${id.slice(0, 40)}' (tessera s3 key ls lists them)`);
        sendJson(res, 200, { removed: id });
      },
    },
  ];
}
