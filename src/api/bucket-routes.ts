/**
 * HTTP routes of the bucket and object tables: object records (not object bodies; the S3 face
 * stores bodies as files and records them here). Served only by nodes that hold the data key.
 */
import { badInput, TesseraError } from '../errors.js';
import { checkPolicy } from '../content/index.js';
import type { Tables } from '../tables/index.js';
import { objectEntryView } from '../files/index.js';
import { readJsonBody, sendJson } from './http-util.js';
import type { Route } from './server.js';

/** Records one PUT may carry; keeps a request within the JSON body limit and one quorum round per partition batch. */
export const MAX_OBJECTS_PER_PUT = 200;
export const DEFAULT_LIST_LIMIT = 1000;

function limitParam(url: URL): number {
  const v = url.searchParams.get('limit');
  if (v === null || v === '') return DEFAULT_LIST_LIMIT;
  if (!/^\d{1,6}$/.test(v)) throw badInput(`limit=${v.slice(0, 20)} is not a whole number`);
  return Number(v);
}

function listOpts(url: URL): { limit: number; prefix?: string; after?: string; token?: string } {
  const prefix = url.searchParams.get('prefix');
  const after = url.searchParams.get('after');
  const token = url.searchParams.get('token');
  return { limit: limitParam(url), ...(prefix ? { prefix } : {}), ...(after ? { after } : {}), ...(token ? { token } : {}) };
}

export function bucketRoutes(tables: Tables | undefined): Route[] {
  const t = (): Tables => {
    if (tables === undefined) throw new TesseraError('AUTH', 'this node is storage-only (no data key) and holds no bucket or object metadata; ask a node that has the data key');
    return tables;
  };
  const key = (url: URL) => {
    const k = url.searchParams.get('key');
    if (k === null) throw badInput('give the object key as ?key=');
    return k;
  };
  return [
    {
      method: 'GET',
      path: '/api/v1/buckets',
      handle: async ({ res, url }) => {
        const page = await t().buckets.list(listOpts(url));
        sendJson(res, 200, { buckets: page.items, token: page.token });
      },
    },
    {
      method: 'POST',
      path: '/api/v1/buckets',
      write: true,
      handle: async ({ req, res }) => {
        const body = (await readJsonBody(req)) as { name?: unknown; policy?: unknown } | null;
        if (typeof body?.name !== 'string') throw badInput('body must be {"name": "...", "policy"?: {...}}');
        const policy = body.policy === undefined ? undefined : checkPolicy(body.policy);
        sendJson(res, 201, await t().buckets.create(body.name, policy));
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/buckets/:bucket',
      write: true,
      handle: async ({ res, params }) => {
        await t().buckets.remove(params.bucket ?? '', t().objects);
        sendJson(res, 200, { removed: params.bucket });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/buckets/:bucket/objects',
      handle: async ({ res, url, params }) => {
        const opts = listOpts(url);
        const page = await t().buckets.withId(params.bucket ?? '', (id) => t().objects.list(id, opts), { recheck: (p) => p.items.length === 0 });
        sendJson(res, 200, { objects: page.items.map(objectEntryView), token: page.token });
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/buckets/:bucket/objects',
      write: true,
      handle: async ({ req, res, params }) => {
        const body = (await readJsonBody(req)) as { objects?: unknown } | null;
        const list = body?.objects;
        if (!Array.isArray(list) || list.length > MAX_OBJECTS_PER_PUT) throw badInput(`body must be {"objects": [{"key": ..., "record": {...}}]} with at most ${MAX_OBJECTS_PER_PUT} objects`);
        const items = list.map((it: unknown, i) => {
          const o = it as { key?: unknown; record?: unknown } | null;
          if (typeof o?.key !== 'string' || typeof o.record !== 'object' || o.record === null) throw badInput(`objects[${i}] must be {"key": "...", "record": {...}}`);
          return { key: o.key, record: o.record as never };
        });
        await t().buckets.withId(params.bucket ?? '', (id) => t().objects.putMany(id, items));
        sendJson(res, 200, { written: list.length });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/buckets/:bucket/object',
      handle: async ({ res, url, params }) => {
        const name = params.bucket ?? '';
        const o = await t().buckets.withId(name, (id) => t().objects.get(id, key(url)), { recheck: (r) => r === null });
        if (o === null) throw new TesseraError('NOT_FOUND', `no object '${key(url).slice(0, 200)}' in bucket '${name}'`);
        sendJson(res, 200, objectEntryView(o));
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/buckets/:bucket/object',
      write: true,
      handle: async ({ res, url, params }) => {
        const name = params.bucket ?? '';
        if (!(await t().buckets.withId(name, (id) => t().objects.remove(id, key(url)), { recheck: (gone) => !gone }))) {
          throw new TesseraError('NOT_FOUND', `no object '${key(url).slice(0, 200)}' in bucket '${name}'`);
        }
        sendJson(res, 200, { removed: key(url) });
      },
    },
  ];
}
