/**
 * Prometheus metrics for one node. The layers below keep plain counters (numbers in objects), and
 * this module reads them when a scrape asks (`collect()` callbacks), so no hot path pays for a
 * metrics library and no layer depends on this one. Only the API's own request latencies are
 * observed as they happen, because nothing else measures them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Route } from './server.js';

/** Bags of monotonically increasing numbers, as the transport, files and NBD layers keep them. */
export type CounterBag = Readonly<Record<string, number>>;

export interface MetricsSources {
  /** Peer transport: bytesIn, bytesOut, callsOk, callsFailed, … (net/types.ts TransportCounters). */
  transport(): CounterBag;
  /** Files service counters: putsOk, putsFailed, getsOk, getsFailed, removes. */
  files?(): CounterBag;
  /** Chunk host counters: chunksStored, chunksDeduplicated, chunksServed, chunksDeleted, … */
  chunkHost?(): CounterBag;
  /** Chunk fetcher counters: chunksFetched, cacheHits, failovers, hedges, badCopiesReported, copiesRepaired. */
  fetcher?(): CounterBag;
  /** Member counts by state, as this node sees them. */
  members(): Record<'alive' | 'suspect' | 'dead' | 'left', number>;
  store(): { used: number; count: number; capacity: number; quota: number | null };
  /** NBD server counters when this node serves volumes (absent otherwise). */
  nbd?(): NbdCounterView | undefined;
  /** Volumes by state: how many are degraded or failed on this master. */
  volumes?(): { total: number; degraded: number; failed: number };
  /** Bytes of HTTP traffic through the API (request and response, headers included). */
  apiBytes?(): { in: number; out: number };
}

export interface NbdCounterView {
  connectionsActive: number;
  bytesRead: number;
  bytesWritten: number;
  ops: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** Latency buckets for API requests, in seconds: from a cached status read to a large upload. */
const API_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Which counter of a bag feeds which label set; absent bag keys read as 0. */
const CHUNK_OPS: Array<{ from: 'chunkHost' | 'fetcher'; key: string; op: string; result: string }> = [
  { from: 'chunkHost', key: 'chunksStored', op: 'store', result: 'stored' },
  { from: 'chunkHost', key: 'chunksDeduplicated', op: 'store', result: 'deduplicated' },
  { from: 'chunkHost', key: 'chunksServed', op: 'serve', result: 'ok' },
  { from: 'chunkHost', key: 'corruptCopiesFound', op: 'serve', result: 'corrupt' },
  { from: 'chunkHost', key: 'chunksDeleted', op: 'delete', result: 'ok' },
  { from: 'chunkHost', key: 'uploadsAborted', op: 'store', result: 'aborted' },
  { from: 'fetcher', key: 'chunksFetched', op: 'fetch', result: 'ok' },
  { from: 'fetcher', key: 'cacheHits', op: 'fetch', result: 'cache_hit' },
  { from: 'fetcher', key: 'failovers', op: 'fetch', result: 'failover' },
  { from: 'fetcher', key: 'hedges', op: 'fetch', result: 'hedged' },
  { from: 'fetcher', key: 'badCopiesReported', op: 'fetch', result: 'bad_copy' },
  { from: 'fetcher', key: 'copiesRepaired', op: 'repair', result: 'ok' },
];

const FILE_OPS: Array<{ key: string; op: string; result: string }> = [
  { key: 'putsOk', op: 'put', result: 'ok' },
  { key: 'putsFailed', op: 'put', result: 'error' },
  { key: 'getsOk', op: 'get', result: 'ok' },
  { key: 'getsFailed', op: 'get', result: 'error' },
  { key: 'removes', op: 'remove', result: 'ok' },
];

const PEER_CALLS: Array<{ key: string; result: string }> = [
  { key: 'callsOk', result: 'ok' },
  { key: 'callsFailed', result: 'error' },
  { key: 'callsTimedOut', result: 'timeout' },
  { key: 'callsCancelled', result: 'cancelled' },
  { key: 'callsUnavailable', result: 'unavailable' },
];

const PEER_SERVED: Array<{ key: string; result: string }> = [
  { key: 'requestsServed', result: 'ok' },
  { key: 'requestsFailed', result: 'error' },
  { key: 'requestsCancelled', result: 'cancelled' },
];

const PEER_CONNECTIONS: Array<{ key: string; event: string }> = [
  { key: 'connectionsAccepted', event: 'accepted' },
  { key: 'connectionsDialed', event: 'dialed' },
  { key: 'connectionsClosed', event: 'closed' },
  { key: 'handshakesFailed', event: 'handshake_failed' },
  { key: 'protocolViolations', event: 'protocol_violation' },
  { key: 'bulkRefused', event: 'bulk_refused' },
];

const n = (bag: CounterBag | undefined, key: string): number => {
  const v = bag?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
};

/**
 * A counter whose value is copied from a source counter at scrape time. prom-client counters only
 * go up by `inc`, so each scrape resets the child and adds the current total: the exposed number
 * is exactly the layer's own count.
 */
function mirror<T extends string>(c: Counter<T>, labels: Record<T, string>, value: number): void {
  c.inc(labels, Math.max(0, value));
}

export interface RepairBacklog {
  /** Chunks (or shards) that have fewer verified copies than their policy asks for. */
  chunks: number;
  bytes: number;
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly apiLatency: Histogram<'method' | 'route' | 'status'>;
  private backlog: RepairBacklog | null = null;

  constructor(private readonly sources: MetricsSources, opts: { nodeId: string; defaultMetrics?: boolean }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: opts.nodeId.slice(0, 16) });
    // The process metrics (CPU, RSS, event loop lag, GC) are the first thing to look at when a node is slow.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });

    const src = this.sources;
    new Counter({
      name: 'tessera_peer_bytes_total',
      help: 'Bytes sent to and received from other nodes over the peer transport (TLS, and sealed payloads on the bulk plane).',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const t = src.transport();
        mirror(this, { direction: 'in' }, n(t, 'bytesIn'));
        mirror(this, { direction: 'out' }, n(t, 'bytesOut'));
      },
    });
    new Counter({
      name: 'tessera_peer_bulk_bytes_total',
      help: 'Of the peer bytes, sealed payload bytes sent and received on the bulk plane beside TLS.',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const t = src.transport();
        mirror(this, { direction: 'in' }, n(t, 'bulkBytesIn'));
        mirror(this, { direction: 'out' }, n(t, 'bulkBytesOut'));
      },
    });
    new Counter({
      name: 'tessera_peer_calls_total',
      help: 'RPC calls this node made to other nodes, by result.',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const t = src.transport();
        for (const m of PEER_CALLS) mirror(this, { result: m.result }, n(t, m.key));
      },
    });
    new Counter({
      name: 'tessera_peer_requests_served_total',
      help: 'RPC requests from other nodes that this node answered, by result.',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const t = src.transport();
        for (const m of PEER_SERVED) mirror(this, { result: m.result }, n(t, m.key));
      },
    });
    new Counter({
      name: 'tessera_peer_connection_events_total',
      help: 'Peer connection events: accepted, dialed, closed, failed handshakes, protocol violations.',
      labelNames: ['event'],
      registers,
      collect() {
        this.reset();
        const t = src.transport();
        for (const m of PEER_CONNECTIONS) mirror(this, { event: m.event }, n(t, m.key));
      },
    });
    new Counter({
      name: 'tessera_chunk_ops_total',
      help: 'Chunk operations on this node, by operation and result.',
      labelNames: ['op', 'result'],
      registers,
      collect() {
        this.reset();
        const bags = { chunkHost: src.chunkHost?.(), fetcher: src.fetcher?.() };
        for (const m of CHUNK_OPS) mirror(this, { op: m.op, result: m.result }, n(bags[m.from], m.key));
      },
    });
    new Counter({
      name: 'tessera_file_ops_total',
      help: 'File operations served by this node, by operation and result.',
      labelNames: ['op', 'result'],
      registers,
      collect() {
        this.reset();
        const f = src.files?.();
        for (const m of FILE_OPS) mirror(this, { op: m.op, result: m.result }, n(f, m.key));
      },
    });
    new Counter({
      name: 'tessera_api_bytes_total',
      help: 'Bytes through the HTTP API, request and response (headers included).',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const b = src.apiBytes?.();
        mirror(this, { direction: 'in' }, b?.in ?? 0);
        mirror(this, { direction: 'out' }, b?.out ?? 0);
      },
    });
    this.apiLatency = new Histogram({
      name: 'tessera_api_request_duration_seconds',
      help: 'HTTP API request latency until the response finished, by route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: API_LATENCY_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'tessera_members',
      help: 'Cluster members as this node sees them, by state (itself included).',
      labelNames: ['state'],
      registers,
      collect() {
        const m = src.members();
        for (const state of ['alive', 'suspect', 'dead', 'left'] as const) this.set({ state }, m[state]);
      },
    });
    new Gauge({
      name: 'tessera_store_used_bytes',
      help: 'Bytes of chunks stored on this node.',
      registers,
      collect() {
        this.set(src.store().used);
      },
    });
    new Gauge({
      name: 'tessera_store_chunks',
      help: 'Chunks stored on this node.',
      registers,
      collect() {
        this.set(src.store().count);
      },
    });
    new Gauge({
      name: 'tessera_store_capacity_bytes',
      help: 'Bytes this node can store: the quota, or the free disk plus what is used.',
      registers,
      collect() {
        this.set(src.store().capacity);
      },
    });
    new Gauge({
      name: 'tessera_store_quota_bytes',
      help: 'The configured quota (--quota); +Inf when there is none.',
      registers,
      collect() {
        this.set(src.store().quota ?? Infinity);
      },
    });
    const self = this;
    // Labelled, so that "not reported yet" is no sample at all rather than a reassuring 0.
    new Gauge({
      name: 'tessera_repair_backlog',
      help: 'Under-replicated data known to the repair loop, in chunks and in bytes (absent until it reports).',
      labelNames: ['unit'],
      registers,
      collect() {
        this.reset();
        if (!self.backlog) return;
        this.set({ unit: 'chunks' }, self.backlog.chunks);
        this.set({ unit: 'bytes' }, self.backlog.bytes);
      },
    });
    new Counter({
      name: 'tessera_nbd_ops_total',
      help: 'NBD requests served by this node (a volume master), by command and result.',
      labelNames: ['op', 'result'],
      registers,
      collect() {
        this.reset();
        const c = src.nbd?.();
        if (!c) return;
        for (const [op, results] of Object.entries(c.ops)) {
          for (const [result, v] of Object.entries(results)) mirror(this, { op, result }, v);
        }
      },
    });
    new Counter({
      name: 'tessera_nbd_bytes_total',
      help: 'NBD payload bytes: read by clients, written by clients.',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const c = src.nbd?.();
        if (!c) return;
        mirror(this, { direction: 'read' }, c.bytesRead);
        mirror(this, { direction: 'written' }, c.bytesWritten);
      },
    });
    new Gauge({
      name: 'tessera_nbd_connections',
      help: 'Open NBD client connections.',
      registers,
      collect() {
        this.reset();
        const c = src.nbd?.();
        if (c) this.set(c.connectionsActive);
      },
    });
    new Gauge({
      name: 'tessera_volumes',
      help: 'Volumes this node knows, and how many of those it serves are degraded or failed.',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const v = src.volumes?.();
        if (!v) return;
        this.set({ state: 'total' }, v.total);
        this.set({ state: 'degraded' }, v.degraded);
        this.set({ state: 'failed' }, v.failed);
      },
    });
  }

  /** The repair loop reports what is left to do; null means "not known" (the gauges disappear). */
  setRepairBacklog(backlog: RepairBacklog | null): void {
    this.backlog = backlog ? { chunks: Math.max(0, backlog.chunks), bytes: Math.max(0, backlog.bytes) } : null;
  }

  get repairBacklog(): RepairBacklog | null {
    return this.backlog;
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.apiLatency.observe({ method, route, status: String(status) }, seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** `GET /metrics`, in the Prometheus text format. */
export function metricsRoute(metrics: NodeMetrics): Route {
  return {
    method: 'GET',
    path: '/metrics',
    handle: async ({ res }) => {
      const text = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    },
  };
}
