/**
 * The OpenAPI 3 document at /api/openapi.json. Paths come from the node's live route table, so
 * the document lists exactly the routes that exist; the descriptions come from ROUTE_DOCS, one
 * entry per route. A route without an entry still appears, with a generic description, and a unit
 * of the test suite checks that every route has one.
 */
import { HTTP_STATUS, type ErrorCode } from '../errors.js';
import type { Route } from './server.js';
import { VERSION } from '../version.js';

type Schema = Record<string, unknown>;

interface RouteDoc {
  summary: string;
  tag: string;
  query?: Array<{ name: string; schema: Schema; description: string }>;
  headers?: Array<{ name: string; description: string }>;
  /** Request body: JSON schema (by ref or inline) or a raw byte stream. */
  body?: { json: Schema } | { raw: string };
  /** Success status and its body: JSON schema, raw bytes, or another media type. */
  ok: { status: number; json?: Schema; raw?: string; type?: string; description?: string };
  /** Error codes this route is known to answer with, besides AUTH and INTERNAL. */
  errors?: ErrorCode[];
}

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const arrayOf = (s: Schema): Schema => ({ type: 'array', items: s });
const int = { type: 'integer', minimum: 0 };
const str = { type: 'string' };

const SCHEMAS: Record<string, Schema> = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string', enum: Object.keys(HTTP_STATUS) }, message: str },
      },
    },
  },
  Peer: {
    type: 'object',
    properties: {
      nodeId: str, addr: str, state: { type: 'string', enum: ['alive', 'suspect', 'dead', 'left'] },
      incarnation: int, capacity: int, used: int, lastSeenAgoMs: { type: ['integer', 'null'] }, zone: { type: 'string' }, self: { type: 'boolean' },
    },
  },
  Status: {
    type: 'object',
    properties: {
      nodeId: str, clusterId: str, version: str, listen: str, api: str, uptimeSec: int, zone: str, zonesUp: int,
      members: { type: 'object', properties: { alive: int, suspect: int, dead: int, left: int } },
      store: { type: 'object', properties: { engine: { type: 'string', enum: ['disk', 'memory'] }, used: int, count: int, capacity: int, quota: { type: ['integer', 'null'] } } },
      peers: arrayOf(ref('Peer')),
      metadata: { type: 'object', description: 'metadata tables (full nodes only)', properties: { fullNodes: int, replicas: int, warning: str, lmdb: { type: 'object', description: 'whether lmdb runs with the bounded page cache build', properties: { bounded: { type: 'boolean' }, detail: str } } } },
    },
  },
  PutResult: {
    type: 'object',
    properties: { fileId: str, name: { type: ['string', 'null'] }, size: int, chunks: int, newChunks: int, policy: str, durationMs: int },
  },
  FileEntry: { type: 'object', properties: { name: str, fileId: str, size: int, createdAt: { type: 'string', format: 'date-time' }, etag: str } },
  FileStat: {
    type: 'object',
    properties: {
      fileId: str, name: { type: ['string', 'null'] }, size: int, chunkSize: int, chunks: int, policy: str, createdAt: str,
      health: { type: 'object', properties: { fullRedundancy: int, degraded: int, lost: int } },
      zones: int, zoneLossesSurvived: int,
      chunkHealth: arrayOf({ type: 'object', properties: { index: int, id: str, size: int, holders: arrayOf(str), expected: arrayOf(str) } }),
    },
  },
  RmResult: { type: 'object', properties: { fileId: str, name: { type: ['string', 'null'] } } },
  Volume: {
    type: 'object',
    properties: {
      name: str, id: str, layout: { type: 'string', enum: ['raid0', 'raid1', 'raid5', 'raid6'] }, size: int, unitSize: int,
      memberSize: int, members: arrayOf(str), version: int, status: { type: ['object', 'null'], description: 'live state on the volume master' },
    },
  },
  Bucket: { type: 'object', properties: { name: str, id: str, createdAt: int, policy: { type: 'object' }, owner: str } },
  ObjectRecord: {
    type: 'object',
    properties: {
      key: str, fileId: str, size: int, etag: str, checksums: { type: 'object', additionalProperties: str }, contentType: str,
      userMeta: { type: 'object', additionalProperties: str }, mtime: int, headers: { type: 'object', additionalProperties: str },
      inline: { type: 'boolean', description: 'the object is stored sealed in its entry, not as a file' },
    },
  },
  VolumeCreate: {
    type: 'object',
    required: ['name', 'size', 'layout'],
    properties: {
      name: str, size: int, layout: { type: 'string', enum: ['raid0', 'raid1', 'raid5', 'raid6'] },
      members: int, nodes: arrayOf(str), unitSize: int,
    },
  },
};

/** The query of every paged table listing (buckets, objects). */
const PAGE_QUERY = [
  { name: 'prefix', schema: str, description: 'only keys starting with this' },
  { name: 'after', schema: str, description: 'only keys after this one' },
  { name: 'token', schema: str, description: 'continuation token from the previous page' },
  { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 1000 }, description: 'entries per page (default 1000)' },
];

const ROUTE_DOCS: Record<string, RouteDoc> = {
  'GET /api/v1/status': { tag: 'cluster', summary: "This node's status: membership counts, store usage and the member table.", ok: { status: 200, json: ref('Status') } },
  'GET /api/v1/peers': { tag: 'cluster', summary: 'The members this node knows, with state, capacity and last contact.', ok: { status: 200, json: arrayOf(ref('Peer')) } },
  'GET /api/v1/events': {
    tag: 'cluster',
    summary: 'Server-sent events: a status snapshot (event "status") at each interval, with cumulative traffic counters, file operation counts and volumes.',
    query: [{ name: 'interval', schema: { type: 'integer', minimum: 200, maximum: 60000 }, description: 'milliseconds between snapshots (default 1000)' }],
    ok: { status: 200, type: 'text/event-stream', raw: 'a stream of `event: status` / `data: {json}` records' },
    errors: ['BAD_INPUT', 'UNAVAILABLE'],
  },
  'GET /metrics': { tag: 'observability', summary: 'Prometheus metrics in the text exposition format.', ok: { status: 200, type: 'text/plain; version=0.0.4', raw: 'Prometheus text format' } },
  'GET /api/openapi.json': { tag: 'observability', summary: 'This document.', ok: { status: 200, json: { type: 'object' } } },
  'PUT /api/v1/files': {
    tag: 'files',
    summary: 'Stores the request body as a file, streamed; answers once the write quorum holds every chunk.',
    query: [
      { name: 'name', schema: str, description: "a name for the file (optional): a key of the bucket 'default'" },
      { name: 'replicas', schema: { type: 'integer', minimum: 1, maximum: 16 }, description: 'copies of each chunk (default 3)' },
      { name: 'quorum', schema: { type: 'integer', minimum: 1 }, description: 'copies on disk before success (default a majority)' },
      { name: 'chunkSize', schema: { type: 'integer' }, description: 'bytes per chunk (default 1 MiB)' },
    ],
    body: { raw: 'the file contents' },
    ok: { status: 201, json: ref('PutResult') },
    errors: ['BAD_INPUT', 'TOO_LARGE', 'NO_SPACE', 'UNAVAILABLE', 'CANCELLED'],
  },
  'GET /api/v1/buckets': {
    tag: 'buckets',
    summary: 'Buckets in name order, one page at a time.',
    query: PAGE_QUERY,
    ok: { status: 200, json: { type: 'object', properties: { buckets: arrayOf(ref('Bucket')), token: { type: ['string', 'null'] } } } },
    errors: ['BAD_INPUT', 'UNAVAILABLE'],
  },
  'POST /api/v1/buckets': {
    tag: 'buckets',
    summary: "Creates a bucket (S3 naming rules) with an optional default redundancy policy.",
    body: { json: { type: 'object', required: ['name'], properties: { name: str, policy: { type: 'object' } } } },
    ok: { status: 201, json: ref('Bucket') },
    errors: ['BAD_INPUT', 'CONFLICT', 'UNAVAILABLE'],
  },
  'DELETE /api/v1/buckets/{bucket}': { tag: 'buckets', summary: 'Removes an empty bucket.', ok: { status: 200, json: { type: 'object' } }, errors: ['NOT_FOUND', 'CONFLICT', 'UNAVAILABLE'] },
  'GET /api/v1/buckets/{bucket}/objects': {
    tag: 'buckets',
    summary: "A bucket's object records in key order (UTF-8 bytes), one page at a time.",
    query: PAGE_QUERY,
    ok: { status: 200, json: { type: 'object', properties: { objects: arrayOf(ref('ObjectRecord')), token: { type: ['string', 'null'] } } } },
    errors: ['BAD_INPUT', 'NOT_FOUND', 'UNAVAILABLE'],
  },
  'PUT /api/v1/buckets/{bucket}/objects': {
    tag: 'buckets',
    summary: 'Writes up to 200 object records (metadata only; the bodies are files).',
    body: { json: { type: 'object', properties: { objects: arrayOf({ type: 'object', properties: { key: str, record: ref('ObjectRecord') } }) } } },
    ok: { status: 200, json: { type: 'object', properties: { written: int } } },
    errors: ['BAD_INPUT', 'TOO_LARGE', 'NOT_FOUND', 'UNAVAILABLE'],
  },
  'GET /api/v1/buckets/{bucket}/object': {
    tag: 'buckets',
    summary: 'One object record.',
    query: [{ name: 'key', schema: str, description: 'the object key' }],
    ok: { status: 200, json: ref('ObjectRecord') },
    errors: ['BAD_INPUT', 'NOT_FOUND', 'UNAVAILABLE'],
  },
  'DELETE /api/v1/buckets/{bucket}/object': {
    tag: 'buckets',
    summary: 'Removes one object record.',
    query: [{ name: 'key', schema: str, description: 'the object key' }],
    ok: { status: 200, json: { type: 'object' } },
    errors: ['BAD_INPUT', 'NOT_FOUND', 'UNAVAILABLE'],
  },
  'POST /api/v1/s3/keys': {
    tag: 's3',
    summary: 'Makes an S3 access key; the secret is in this answer only. Without "buckets" the key reaches every bucket.',
    body: { json: { type: 'object', properties: { name: str, buckets: { type: ['object', 'null'], additionalProperties: arrayOf({ type: 'string', enum: ['read', 'write', 'owner'] }) } } } },
    ok: { status: 201, json: { type: 'object', properties: { accessKeyId: str, secretKey: str, name: str, createdAt: int, buckets: { type: ['object', 'null'] } } } },
    errors: ['BAD_INPUT', 'AUTH', 'UNAVAILABLE'],
  },
  'GET /api/v1/s3/keys': {
    tag: 's3',
    summary: 'The S3 access keys, one page at a time, never their secrets (needs the token, as a write does).',
    query: [{ name: 'token', schema: str, description: 'continuation token from the previous page' }],
    ok: { status: 200, json: { type: 'object', properties: { keys: arrayOf({ type: 'object', properties: { accessKeyId: str, name: str, createdAt: int, buckets: { type: ['object', 'null'] } } }), token: { type: ['string', 'null'] } } } },
    errors: ['AUTH', 'UNAVAILABLE'],
  },
  'DELETE /api/v1/s3/keys/{id}': {
    tag: 's3',
    summary: 'Removes an S3 access key; nodes stop accepting it within their 5 s key cache.',
    ok: { status: 200, json: { type: 'object', properties: { removed: str } } },
    errors: ['NOT_FOUND', 'AUTH', 'UNAVAILABLE'],
  },
  'GET /api/v1/files': {
    tag: 'files',
    summary: "Named files (the bucket 'default') in name order (UTF-8 bytes), one page at a time.",
    query: PAGE_QUERY,
    ok: { status: 200, json: { type: 'object', properties: { files: arrayOf(ref('FileEntry')), token: { type: ['string', 'null'] } } } },
    errors: ['BAD_INPUT', 'AUTH', 'UNAVAILABLE'],
  },
  'GET /api/v1/files/{ref}': {
    tag: 'files',
    summary: 'A file\'s bytes, streamed. Supports a single Range (bytes=A-B, bytes=A-, bytes=-N): 206 with Content-Range, 416 when it selects nothing.',
    headers: [{ name: 'Range', description: 'one byte range' }],
    ok: { status: 200, raw: 'the file contents (206 for a range)' },
    errors: ['BAD_INPUT', 'NOT_FOUND', 'CORRUPT', 'UNAVAILABLE'],
  },
  'GET /api/v1/files/{ref}/stat': { tag: 'files', summary: "A file's chunks, policy, health and holders.", ok: { status: 200, json: ref('FileStat') }, errors: ['NOT_FOUND'] },
  'DELETE /api/v1/files/{ref}': { tag: 'files', summary: 'Deletes a file: its name and its chunks on every node.', ok: { status: 200, json: ref('RmResult') }, errors: ['NOT_FOUND'] },
  'GET /api/v1/repair': {
    tag: 'redundancy',
    summary: 'The repair loop: under-replicated chunks and bytes, the pass in progress, totals, dead members and when their data is restored.',
    ok: { status: 200, json: { type: 'object', additionalProperties: true } },
  },
  'GET /api/v1/scrub': { tag: 'redundancy', summary: 'The scrubber: what the last verification pass of local chunks found.', ok: { status: 200, json: { type: 'object', additionalProperties: true } } },
  'POST /api/v1/scrub': { tag: 'redundancy', summary: 'Runs a scrub pass now (or joins the one running) and reports it.', ok: { status: 200, json: { type: 'object', additionalProperties: true } } },
  'GET /api/v1/drain': {
    tag: 'redundancy', summary: 'Drain state of a node (this one, or ?node=ID): chunks and bytes left before it is safe to stop.',
    query: [{ name: 'node', schema: str, description: 'node id or prefix (default: this node)' }],
    ok: { status: 200, json: { type: 'object', additionalProperties: true } }, errors: ['NOT_FOUND'],
  },
  'POST /api/v1/drain': {
    tag: 'redundancy', summary: 'Starts (or with cancel: true stops) moving a node\'s data to the others before it is retired.',
    body: { json: { type: 'object', properties: { node: str, cancel: { type: 'boolean' } } } },
    ok: { status: 200, json: { type: 'object', additionalProperties: true } }, errors: ['BAD_INPUT', 'NOT_FOUND', 'UNAVAILABLE'],
  },
  'GET /api/v1/chunks': {
    tag: 'redundancy', summary: 'Ids of chunks stored on this node, for operators checking placement.',
    query: [{ name: 'limit', schema: { type: 'integer', minimum: 1 }, description: 'most ids to list' }],
    ok: { status: 200, json: { type: 'object', additionalProperties: true } }, errors: ['BAD_INPUT'],
  },
  'GET /api/v1/counters/files': { tag: 'files', summary: 'Raw counters of the files service (see /metrics for the same numbers).', ok: { status: 200, json: { type: 'object', additionalProperties: int } } },
  'GET /api/v1/volumes': { tag: 'volumes', summary: 'Every block volume the cluster knows.', ok: { status: 200, json: arrayOf(ref('Volume')) } },
  'POST /api/v1/volumes': { tag: 'volumes', summary: 'Creates a volume.', body: { json: ref('VolumeCreate') }, ok: { status: 201, json: ref('Volume') }, errors: ['BAD_INPUT', 'TOO_LARGE', 'CONFLICT', 'UNAVAILABLE'] },
  'GET /api/v1/volumes/{name}': { tag: 'volumes', summary: 'One volume, with live state when this node is its master.', ok: { status: 200, json: ref('Volume') }, errors: ['NOT_FOUND'] },
  'DELETE /api/v1/volumes/{name}': { tag: 'volumes', summary: 'Removes a volume.', ok: { status: 200, json: { type: 'object', properties: { removed: str } } }, errors: ['NOT_FOUND', 'CONFLICT'] },
  'POST /api/v1/volumes/{name}/replace': {
    tag: 'volumes', summary: 'Rebuilds the member on node `old` onto node `new` (on the master).',
    body: { json: { type: 'object', required: ['old', 'new'], properties: { old: str, new: str } } },
    ok: { status: 200, json: { type: 'object' } }, errors: ['BAD_INPUT', 'NOT_FOUND', 'CONFLICT', 'UNAVAILABLE'],
  },
  'POST /api/v1/volumes/{name}/check': {
    tag: 'volumes', summary: 'Compares mirrors or parity, optionally repairing (on the master).',
    body: { json: { type: 'object', properties: { repair: { type: 'boolean' } } } },
    ok: { status: 200, json: { type: 'object' } }, errors: ['BAD_INPUT', 'NOT_FOUND', 'CONFLICT'],
  },
};

/** `/api/v1/files/:ref` → `/api/v1/files/{ref}`, the OpenAPI spelling. */
export function openApiPath(path: string): string {
  return path.replace(/:([a-zA-Z]+)/g, '{$1}');
}

export function routeDocKey(route: Pick<Route, 'method' | 'path'>): string {
  return `${route.method} ${openApiPath(route.path)}`;
}

function errorResponse(code: ErrorCode): [string, Schema] {
  return [String(HTTP_STATUS[code]), { description: code, content: { 'application/json': { schema: ref('Error') } } }];
}

export function buildOpenApi(routes: ReadonlyArray<Pick<Route, 'method' | 'path' | 'write'>>, opts: { tokenForReads: boolean }): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    const doc = ROUTE_DOCS[routeDocKey(route)];
    const op: Schema = {
      operationId: `${route.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^a-zA-Z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: doc?.summary ?? `${route.method} ${path}`,
      tags: [doc?.tag ?? 'other'],
    };
    const params: Schema[] = [...route.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: str }));
    for (const q of doc?.query ?? []) params.push({ name: q.name, in: 'query', required: false, schema: q.schema, description: q.description });
    for (const h of doc?.headers ?? []) params.push({ name: h.name, in: 'header', required: false, schema: str, description: h.description });
    if (params.length) op.parameters = params;
    if (doc?.body) {
      op.requestBody = 'json' in doc.body
        ? { required: true, content: { 'application/json': { schema: doc.body.json } } }
        : { required: true, description: doc.body.raw, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
    }
    const responses: Record<string, Schema> = {};
    if (doc) {
      const type = doc.ok.type ?? (doc.ok.json ? 'application/json' : 'application/octet-stream');
      const schema = doc.ok.json ?? { type: 'string', format: 'binary', description: doc.ok.raw };
      responses[String(doc.ok.status)] = { description: doc.ok.description ?? doc.summary, content: { [type]: { schema } } };
      if (path === '/api/v1/files/{ref}') {
        responses['206'] = { description: 'the requested range', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
        responses['416'] = { description: 'the range selects no byte of the file', content: { 'application/json': { schema: ref('Error') } } };
      }
    } else {
      responses['200'] = { description: 'success' };
    }
    for (const code of doc?.errors ?? []) {
      const [status, body] = errorResponse(code);
      responses[status] ??= body;
    }
    if (route.write || opts.tokenForReads) {
      op.security = [{ bearer: [] }];
      const [status, body] = errorResponse('AUTH');
      responses[status] ??= body;
    }
    const [s500, b500] = errorResponse('INTERNAL');
    responses[s500] ??= b500;
    op.responses = responses;
    (paths[path] ??= {})[route.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'tessera node API',
      version: VERSION,
      description: 'Every node serves this API. Writes need "Authorization: Bearer TOKEN" (DATA/api-token); reads need it too when the API listens beyond loopback. Errors are {"error": {"code", "message"}} with a matching status.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: SCHEMAS,
    },
    paths,
  };
}

/** The route that serves the document; `routes` is read at request time, so it includes itself. */
export function openApiRoute(routes: ReadonlyArray<Route>, opts: { tokenForReads: boolean }): Route {
  let cached: string | undefined;
  return {
    method: 'GET',
    path: '/api/openapi.json',
    handle: ({ res }) => {
      cached ??= JSON.stringify(buildOpenApi(routes, opts));
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(cached) });
      res.end(cached);
    },
  };
}
