/**
 * The composition root: wires one node from its config. Nothing else constructs services.
 */
import { writeFile, rename, rm } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ApiServer, coreRoutes, type Route, volumeRoutes, filesRoutes, bucketRoutes, NodeMetrics, metricsRoute, type MetricsSources, EventHub, openApiRoute, s3KeyRoutes, isLoopbackHost, type PeerView, type StatusView } from './api/index.js';
import { apiUsesTls, loadApiTls, type ApiSecurityOptions } from './net/index.js';
import { composeFiles, MultipartService, NameMigration, ObjectService, type FilesNet, type FilesTuning } from './files/index.js';
import { startVolumes } from './block/index.js';
import { NbdServer, type NbdAddress, type NbdServerOptions } from './block/nbd/index.js';
import { realClock, loadDataDir, Membership, NodeCaller, type MemberInfo, type MembershipConfig, defaultZone, restartIncarnation, AdvertisedCapacity } from './cluster/index.js';
import { TesseraError } from './errors.js';
import type { Logger } from './log.js';
import { PeerRouter, Transport } from './net/index.js';
import { MAX_FRAME_PAYLOAD_BYTES, PROTOCOL_VERSION } from './limits.js';
import { RUNTIME_FILE, type RuntimeInfo } from './runtime-file.js';
import { type ChunkStore, type DiskEngine, openDiskChunkStore, MemoryChunkStore, openMetadata, type Metadata, lmdbAddonStatus } from './store/index.js';
import { openTables, registerTableHandlers, AccessKeyTable, type Tables } from './tables/index.js';
import { S3Server, coreS3Routes, multipartRoutes, type S3Route } from './s3/index.js';
import { VERSION } from './version.js';

/** The CLI parses `--store-engine` with the store's own rule; it reaches the store only through here. */
export { parseDiskEngine } from './store/index.js';

export interface NodeConfig {
  dataDir: string;
  listen: { host: string; port: number };
  api: { host: string; port: number };
  /** host:port peers dial; default: the listen address (or this host's first address when listening on a wildcard). */
  advertise?: string;
  bootstrap: string[];
  /** Failure domain (rack, room, site) this node declares; default: this host's name. */
  zone?: string;
  memory: boolean;
  /** Disk chunk engine; by default the one the data dir already holds, else segments. */
  storeEngine?: DiskEngine;
  quota?: number;
  membership?: Partial<MembershipConfig>;
  /** Serve every volume over NBD as their master (tessera nbd). */
  nbd?: { listen: { host: string; port: number } | { socket: string }; memberTimeoutMs?: number; server?: Omit<NbdServerOptions, 'provider' | 'logger'> };
  /** Files service knobs (tests shorten the grace period and the anti-entropy interval). */
  files?: FilesTuning;
  /** Copies of each metadata table partition (default 3). */
  tableReplicas?: number;
  /** Origin allowed to call the API from another origin's page (CORS); none by default. */
  cors?: string;
  /** TLS, token and transfer limits of the API (see api/tls.ts). */
  apiSecurity?: ApiSecurityOptions;
  /** Serve S3 here; TLS follows the API's rules for this address, with the API's certificate. */
  s3?: { host: string; port: number; domain?: string };
  /** Sealed payloads travel beside TLS (net/bulk-wire.ts) unless false. */
  bulkPlane?: boolean;
  logger: Logger;
}

/** Capabilities this node announces in its hello. */
const CAPABILITIES = ['membership/1', 'chunks/1'];
/**
 * Payloads under one sealed 64 KiB volume stripe unit (66,560 bytes) stay on TLS. A member's batch
 * of 4 KiB random writes or reads (a few 4,160-byte records) cost more on the bulk plane, where
 * each transfer pays a GMAC context and a second socket write and read on both ends, than TLS
 * costs for the same bytes; whole units (sequential volume I/O) and 1 MiB chunks still go bulk.
 */
const BULK_PLANE_MIN_BYTES = 65 << 10;
/**
 * Payloads that are ciphertext already, each with its own authentication checked by whoever uses
 * it: chunks (their id is the SHA-256 of the sealed bytes) and sealed volume sectors (an AEAD tag
 * each, opened at the master). Only these may travel on the bulk plane.
 */
const SEALED_PAYLOADS = {
  requests: ['chunk.put', 'extent.write', 'extent.batch'],
  replies: ['chunk.get', 'extent.read', 'extent.batch'],
  // The chunk.put handler stores nothing whose SHA-256 is not the id its request names.
  contentAddressed: ['chunk.put'],
  minBytes: BULK_PLANE_MIN_BYTES,
};
/** Address book writes are coalesced: membership can change many times a second in a storm. */
const ADDRESS_BOOK_FLUSH_MS = 500;
const MEMBERS_KEY = 'address-book';

export interface RunningNode {
  readonly nodeId: string;
  readonly listenAddr: string;
  readonly apiAddr: string;
  /** Where S3 is served, when it is. */
  readonly s3Addr: string | undefined;
  readonly membership: Membership;
  readonly chunks: ChunkStore;
  /** Where the NBD face listens, when this node is a volume master. */
  readonly nbdAddr: NbdAddress | undefined;
  /** Prometheus metrics; the repair loop reports its backlog through `setRepairBacklog`. */
  readonly metrics: NodeMetrics;
  stop(opts?: { leave?: boolean }): Promise<void>;
}

function wildcardAdvertise(host: string, port: number): string {
  if (host !== '0.0.0.0' && host !== '::') return `${host}:${port}`;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return `${a.address}:${port}`;
  }
  return `127.0.0.1:${port}`;
}

export async function startNode(config: NodeConfig): Promise<RunningNode> {
  const log = config.logger;
  const identity = await loadDataDir(config.dataDir);
  const nodeId = identity.credentials.nodeId;
  const startedAt = Date.now();

  const meta: Metadata = await openMetadata(join(config.dataDir, 'meta'));
  const chunks: ChunkStore = config.memory
    ? new MemoryChunkStore(config.quota !== undefined ? { quota: config.quota } : {})
    : await openDiskChunkStore(config.dataDir, config.storeEngine, { log, ...(config.quota !== undefined ? { quota: config.quota } : {}) });

  // Method prefix → handler; each service registers the part of the protocol it owns.
  const handlers = new PeerRouter();
  const transport = new Transport({
    credentials: identity.credentials,
    clusterId: identity.cluster.clusterId,
    clusterSecret: identity.cluster.clusterSecret,
    previousClusterSecret: identity.cluster.previousClusterSecret,
    host: config.listen.host,
    port: config.listen.port,
    ...(config.advertise ? { advertiseAddr: config.advertise } : {}),
    capabilities: CAPABILITIES,
    logger: log,
    // Membership messages are all control: a payload on one is a peer misbehaving.
    maxPayloadBytesFor: (method) => (method.startsWith('member.') ? 0 : MAX_FRAME_PAYLOAD_BYTES),
    handler: handlers.handle,
    ...(config.bulkPlane !== false ? { bulkPlane: SEALED_PAYLOADS } : {}),
  });
  let bound: { host: string; port: number };
  try {
    bound = await transport.start();
  } catch (err) {
    await chunks.close();
    await meta.close();
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${config.listen.host}:${config.listen.port}`;
    if (code === 'EADDRINUSE') throw new TesseraError('CONFLICT', `peer address ${where} is already in use; choose another --listen port`);
    if (code === 'EADDRNOTAVAIL') throw new TesseraError('BAD_INPUT', `peer address ${where} is not an address of this machine`);
    throw err;
  }
  const advertise = config.advertise ?? wildcardAdvertise(config.listen.host, bound.port);

  // Membership asks for this node's stats before the files service exists; it answers once it does.
  let draining = (): boolean => false;
  const zone = config.zone ?? defaultZone();
  const saved = (await meta.get('members', MEMBERS_KEY)) as { incarnation?: number; members?: MemberInfo[] } | undefined;
  // A restart must outrank every rumour about this node's previous life.
  const restarted = restartIncarnation(saved?.incarnation);
  if (restarted.reset) log.warn({ saved: String(saved?.incarnation).slice(0, 40) }, 'persisted incarnation is out of range; starting over at 0');
  // What this node tells the cluster its capacity is, and places by for itself: the same number
  // on every node, so every node weights placement alike (cluster/advertised-capacity.ts). A
  // draining node tells none, so placement everywhere stops choosing it.
  const capacity = new AdvertisedCapacity(() => (draining() ? 0 : chunks.usage().capacity));
  const membership = new Membership({
    self: { nodeId, addr: advertise, zone },
    net: {
      call: async (addr, method, body, opts) =>
        (await transport.call(addr, method, body, undefined, { timeoutMs: opts.timeoutMs, ...(opts.expectNodeId ? { expectNodeId: opts.expectNodeId } : {}) })).body,
    },
    clock: realClock,
    random: Math.random,
    seeds: config.bootstrap,
    addressBook: (saved?.members ?? []).filter((m) => m.nodeId !== nodeId),
    incarnation: restarted.incarnation,
    localStats: () => ({ capacity: capacity.now(), used: chunks.usage().used }),
    ...(config.membership ? { config: config.membership } : {}),
    logger: log,
  });
  membership.registerPeerHandlers(handlers);
  const caller = new NodeCaller({
    self: { nodeId, clusterId: identity.cluster.clusterId, protocolVersion: PROTOCOL_VERSION, capabilities: CAPABILITIES, listenAddr: advertise },
    addressOf: (id) => membership.get(id)?.addr,
    send: (addr, method, body, payload, opts) => transport.call(addr, method, body, payload, opts),
    local: handlers.handle,
  });
  const volumes = await startVolumes({
    dataDir: config.dataDir, selfId: nodeId, meta, membership, master: config.nbd !== undefined, caller, handlers,
    ...(identity.cluster.dataKey ? { dataKey: identity.cluster.dataKey } : {}),
    ...(identity.cluster.authorityKey ? { authorityKey: identity.cluster.authorityKey } : {}),
    ...(config.nbd?.memberTimeoutMs !== undefined ? { memberTimeoutMs: config.nbd.memberTimeoutMs } : {}),
    logger: log,
  });

  const filesNet: FilesNet = {
    selfId: nodeId,
    live: () => membership.live().map((m) => ({ nodeId: m.nodeId, zone: m.zone, capacity: m.nodeId === nodeId ? capacity.now() : m.capacity })),
    members: () => membership.members().map((m) => ({ nodeId: m.nodeId, state: m.state, capacity: m.capacity })),
    caller,
  };
  const filesNode = composeFiles({
    net: filesNet,
    store: chunks,
    meta,
    ...(identity.cluster.dataKey ? { dataKey: identity.cluster.dataKey } : {}),
    ...(identity.cluster.authorityKey ? { authorityKey: identity.cluster.authorityKey } : {}),
    log,
    ...config.files,
  });
  const files = filesNode.service;
  draining = () => files.draining;
  filesNode.registerPeerHandlers(handlers);

  // Only a node with the data key holds table partitions: they name files and objects.
  const dataKey = identity.cluster.dataKey;
  const tables: Tables | undefined = dataKey === undefined ? undefined : await openTables({
    dir: join(config.dataDir, 'tables'),
    dataKey,
    net: {
      selfId: nodeId,
      live: () => filesNet.live().map((n) => ({ nodeId: n.nodeId, weight: 1, ...(n.zone !== undefined ? { zone: n.zone } : {}) })),
      call: async (id, method, body, opts) => (await caller.call(id, method, body, undefined, opts)).body,
    },
    ...(config.tableReplicas !== undefined ? { replicas: config.tableReplicas } : {}),
    ...(config.files?.antiEntropyIntervalMs !== undefined ? { syncIntervalMs: config.files.antiEntropyIntervalMs } : {}),
    log,
  });
  if (tables) registerTableHandlers(tables.service, handlers);
  // Objects (names in the default bucket, S3) need the tables, so only full nodes serve them.
  const objects = tables === undefined ? undefined : new ObjectService({ files, tables, log, ...(dataKey !== undefined ? { dataKey } : {}) });
  // A data directory of the version before names were objects: its name records become objects.
  const nameMigration = objects === undefined || dataKey === undefined ? undefined : new NameMigration({ meta, dataKey, selfId: nodeId, objects, log });
  const accessKeys = tables === undefined || dataKey === undefined ? undefined : new AccessKeyTable(tables.service, dataKey);
  // Multipart uploads are table records and their parts files: full nodes only, like objects.
  const multipart = tables === undefined || objects === undefined ? undefined : new MultipartService({ tables: tables.service, objects, files, log, ...(config.files?.multipartAbandonMs !== undefined ? { abandonAfterMs: config.files.multipartAbandonMs, sweepIntervalMs: Math.max(1000, Math.floor(config.files.multipartAbandonMs / 4)) } : {}) });
  if (config.s3 !== undefined && (objects === undefined || accessKeys === undefined)) {
    throw new TesseraError('BAD_INPUT', 'this node is storage-only (no data key): it holds no buckets or S3 keys, so it cannot serve --s3; serve S3 from a full node');
  }

  let flushTimer: NodeJS.Timeout | undefined;
  const saveAddressBook = async () => {
    flushTimer = undefined;
    await meta.put('members', MEMBERS_KEY, { incarnation: membership.incarnation, members: membership.members() });
  };
  membership.on('change', (m: MemberInfo, prev: string | undefined) => {
    if (m.state !== prev) log.info({ member: m.nodeId, addr: m.addr, state: m.state, was: prev ?? 'unknown' }, 'membership change');
    if (m.state === 'alive' && prev !== 'alive') {
      filesNode.peerUp(m.nodeId);
      tables?.service.peerUp(m.nodeId);
    }
    flushTimer ??= setTimeout(() => void saveAddressBook().catch((err: unknown) => log.warn({ err }, 'address book not saved')), ADDRESS_BOOK_FLUSH_MS);
  });

  const peers = (): PeerView[] => {
    const now = realClock.now();
    const usage = chunks.usage();
    const self: PeerView = { nodeId, addr: advertise, zone, state: 'alive', incarnation: membership.incarnation, capacity: usage.capacity, used: usage.used, lastSeenAgoMs: null, self: true };
    const others = membership.members().filter((m) => m.nodeId !== nodeId).map((m): PeerView => ({
      nodeId: m.nodeId,
      addr: m.addr,
      zone: m.zone,
      state: m.state,
      incarnation: m.incarnation,
      capacity: m.capacity,
      used: m.used,
      // lastSeen 0: known only by gossip so far, never heard from directly.
      lastSeenAgoMs: m.lastSeen > 0 ? Math.max(0, Math.round(now - m.lastSeen)) : null,
      self: false,
    }));
    return [self, ...others].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  };
  const status = (): StatusView => {
    const list = peers();
    const count = (s: PeerView['state']) => list.filter((p) => p.state === s).length;
    const u = chunks.usage();
    return {
      nodeId,
      clusterId: identity.cluster.clusterId,
      version: VERSION,
      listen: advertise,
      api: apiAddr,
      uptimeSec: Math.round((Date.now() - startedAt) / 1000),
      zone,
      zonesUp: new Set(list.filter((p) => p.state === 'alive' || p.state === 'suspect').map((p) => p.zone)).size,
      members: { alive: count('alive'), suspect: count('suspect'), dead: count('dead'), left: count('left') },
      store: { engine: config.memory ? 'memory' : 'disk', used: u.used, count: u.count, capacity: u.capacity, quota: Number.isFinite(u.quota) ? u.quota : null },
      peers: list,
      repair: files.repairStats(),
      ...(tables ? { metadata: { ...tables.service.status(), lmdb: lmdbAddonStatus() } } : {}),
    };
  };

  const routes: Route[] = coreRoutes({ status, peers });
  routes.push(...volumeRoutes(volumes.service));
  routes.push(...filesRoutes(files, objects));
  routes.push(...bucketRoutes(tables));
  routes.push(...s3KeyRoutes(accessKeys));
  // Read at scrape time from the counters each layer keeps; the NBD face exists only on a master.
  let nbdServer: NbdServer | undefined;
  const metricSources: MetricsSources = {
    transport: () => ({ ...transport.counters }),
    files: () => ({ ...files.counters }),
    chunkHost: () => ({ ...files.host.counters }),
    fetcher: () => ({ ...files.fetcher.counters }),
    members: () => status().members,
    store: () => status().store,
    nbd: () => nbdServer?.counters,
    volumes: () => {
      const list = volumes.service.list();
      return { total: list.length, degraded: list.filter((v) => v.status?.degraded).length, failed: list.filter((v) => v.status?.failed).length };
    },
    apiBytes: () => api.bytes(),
  };
  const metrics = new NodeMetrics(metricSources, { nodeId });
  const events = new EventHub({
    sources: { status, volumes: () => volumes.service.list(), metrics: metricSources, repairBacklog: () => metrics.repairBacklog },
    logger: log,
  });
  const sec = config.apiSecurity ?? {};
  const loopbackApi = isLoopbackHost(config.api.host);
  const tlsFiles = sec.certFile !== undefined && sec.keyFile !== undefined ? { certFile: sec.certFile, keyFile: sec.keyFile } : undefined;
  const apiTls = apiUsesTls(loopbackApi, sec) ? await loadApiTls(config.dataDir, tlsFiles) : undefined;
  routes.push(metricsRoute(metrics), events.route(), openApiRoute(routes, { tokenForReads: !(sec.openReads === true && loopbackApi) }));
  const api = new ApiServer({
    host: config.api.host, port: config.api.port, token: identity.apiToken, routes, logger: log,
    ...(config.cors ? { cors: config.cors } : {}),
    ...(apiTls ? { tls: { cert: apiTls.cert, key: apiTls.key } } : {}),
    ...(sec.openReads !== undefined ? { openReads: sec.openReads } : {}),
    ...(sec.idleTimeoutMs !== undefined ? { idleTimeoutMs: sec.idleTimeoutMs } : {}),
    ...(sec.maxTransfers !== undefined ? { maxTransfers: sec.maxTransfers } : {}),
    observe: (method, route, code, seconds) => metrics.observeRequest(method, route, code, seconds),
  });
  let s3: S3Server | undefined;
  if (config.s3 !== undefined && objects !== undefined && accessKeys !== undefined) {
    // Beyond loopback S3 speaks HTTPS with the API's certificate, by the API's own rules.
    const s3Tls = apiUsesTls(isLoopbackHost(config.s3.host), { ...sec, openReads: false }) ? apiTls ?? await loadApiTls(config.dataDir, tlsFiles) : undefined;
    // The S3 operations: the core ones, and beside them those of other modules (multipart).
    const s3Routes: S3Route[] = [...coreS3Routes(), ...(multipart ? multipartRoutes(multipart) : [])];
    s3 = new S3Server({
      host: config.s3.host, port: config.s3.port, objects,
      routes: s3Routes,
      loadKey: (id) => accessKeys.get(id),
      logger: log.child({ component: 's3' }),
      ...(config.s3.domain ? { domain: config.s3.domain } : {}),
      ...(s3Tls ? { tls: { cert: s3Tls.cert, key: s3Tls.key } } : {}),
    });
  }
  let apiAddr: string;
  let s3Addr: string | undefined;
  try {
    apiAddr = await api.start();
    s3Addr = await s3?.start();
  } catch (err) {
    await api.close();
    await transport.close();
    await chunks.close();
    await meta.close();
    throw err;
  }
  membership.start();
  filesNode.start();
  tables?.service.start();
  nameMigration?.start();
  multipart?.start();
  let nbd: NbdServer | undefined;
  let nbdAddr: NbdAddress | undefined;
  if (config.nbd !== undefined && volumes.master !== undefined) {
    nbd = new NbdServer({ ...config.nbd.server, provider: volumes.master, logger: log.child({ component: 'nbd' }) });
    nbdServer = nbd;
    nbdAddr = await nbd.listen(config.nbd.listen);
  }

  const runtime: RuntimeInfo = {
    pid: process.pid, nodeId, listen: advertise, api: apiAddr, startedAt: new Date(startedAt).toISOString(),
    apiScheme: api.scheme,
    ...(s3 && s3Addr ? { s3: s3Addr, s3Scheme: s3.scheme } : {}),
    ...(apiTls ? { apiTls: { certFile: apiTls.certFile, fingerprint256: apiTls.fingerprint256, selfSigned: apiTls.selfSigned } } : {}),
  };
  const runtimePath = join(config.dataDir, RUNTIME_FILE);
  await writeFile(runtimePath + '.tmp', JSON.stringify(runtime, null, 2) + '\n');
  await rename(runtimePath + '.tmp', runtimePath);
  log.info({ nodeId, listen: advertise, api: apiAddr, bootstrap: config.bootstrap, engine: config.memory ? 'memory' : 'disk' }, 'node ready');
  if (tables) {
    const lmdb = lmdbAddonStatus();
    if (lmdb.bounded) log.info({ lmdb: lmdb.detail }, 'table store: lmdb built with a bounded page cache');
    else log.warn({ lmdb: lmdb.detail }, "table store: lmdb's prebuilt addon, whose encrypted page cache holds up to ~1 GiB per store; npm install builds a bounded one where gcc, g++, make and python3 are installed");
  }

  let stopped = false;
  return {
    nodeId,
    listenAddr: advertise,
    apiAddr,
    s3Addr,
    membership,
    chunks,
    nbdAddr,
    metrics,
    async stop(opts = {}) {
      if (stopped) return;
      stopped = true;
      // Table anti-entropy ends first: once this node has left it is no holder in its own view,
      // and a round would hand off and drop every partition it will hold again on restart. No
      // round starts from here on; one running is awaited below, not before the leave is announced.
      const roundsEnded = tables?.service.stop();
      if (opts.leave) await membership.leave().catch((err: unknown) => log.warn({ err }, 'leave announcement failed'));
      else membership.stop();
      if (flushTimer) clearTimeout(flushTimer);
      await saveAddressBook().catch(() => undefined);
      events.close();
      await s3?.close();
      await api.close();
      await nbd?.close();
      await volumes.stop();
      await nameMigration?.stop();
      await multipart?.stop();
      await filesNode.stop();
      await roundsEnded;
      await tables?.close();
      await transport.close();
      await chunks.close();
      await meta.close();
      await rm(runtimePath, { force: true });
    },
  };
}
