/**
 * HTTP routes for block volumes: /api/v1/volumes… Bodies are validated here (zod) before the
 * service sees them; writes need the API token.
 */
import { z } from 'zod';
import { badInput } from '../errors.js';
import type { VolumeView, CheckReport } from '../block/index.js';
import { readJsonBody, sendJson } from './http-util.js';
import type { Route } from './server.js';

export type { VolumeView, ResyncEvent, CheckReport } from '../block/index.js';

export interface ReplaceResult {
  member: number;
  unitsCopied: number;
  volume: VolumeView;
}

/** What the routes need; the node's VolumeService provides it. */
export interface VolumeApi {
  list(): VolumeView[];
  info(name: string): VolumeView;
  create(body: unknown): Promise<VolumeView>;
  remove(name: string): Promise<void>;
  replace(name: string, oldNode: string, newNode: string): Promise<ReplaceResult>;
  check(name: string, repair: boolean): Promise<CheckReport>;
}

const replaceSchema = z.object({ old: z.string().min(1).max(128), new: z.string().min(1).max(128) }).strict();
const checkSchema = z.object({ repair: z.boolean().optional() }).strict();

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0];
    throw badInput(`${what}: ${i ? `${i.path.join('.') || 'body'}: ${i.message}` : 'invalid body'}`);
  }
  return r.data;
}

export function volumeRoutes(api: VolumeApi): Route[] {
  return [
    { method: 'GET', path: '/api/v1/volumes', handle: ({ res }) => sendJson(res, 200, api.list()) },
    {
      method: 'POST', path: '/api/v1/volumes', write: true,
      handle: async ({ req, res }) => sendJson(res, 201, await api.create(await readJsonBody(req))),
    },
    { method: 'GET', path: '/api/v1/volumes/:name', handle: ({ res, params }) => sendJson(res, 200, api.info(params.name ?? '')) },
    {
      method: 'DELETE', path: '/api/v1/volumes/:name', write: true,
      handle: async ({ res, params }) => {
        await api.remove(params.name ?? '');
        sendJson(res, 200, { removed: params.name });
      },
    },
    {
      method: 'POST', path: '/api/v1/volumes/:name/replace', write: true,
      handle: async ({ req, res, params }) => {
        const b = parse(replaceSchema, await readJsonBody(req), 'volume replace');
        sendJson(res, 200, await api.replace(params.name ?? '', b.old, b.new));
      },
    },
    {
      method: 'POST', path: '/api/v1/volumes/:name/check', write: true,
      handle: async ({ req, res, params }) => {
        const b = parse(checkSchema, await readJsonBody(req), 'volume check');
        sendJson(res, 200, await api.check(params.name ?? '', b.repair === true));
      },
    },
  ];
}
