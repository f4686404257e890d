/**
 * `npm run bench -- tablesim [--nodes 1000] [--seed 1] [--ops 60]`: what one metadata operation
 * costs in messages at a cluster size no machine here can host, from the deterministic simulated
 * network driving the production table service (src/tables). Every full node answers the
 * full-node challenge; only nodes that receive table traffic get a store. Figures: messages per
 * put, per point lookup, per listed page, and the share of partition copies that move when one
 * node joins (≈ 1/(N+1)), with the entries handed off for one real join.
 */
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { SimClock } from '../src/cluster/sim/sim-clock.js';
import { SimNetwork } from '../src/cluster/sim/sim-network.js';
import { createPrng } from '../src/cluster/sim/prng.js';
import { Placer } from '../src/cluster/placement.js';
import { HybridClock } from '../src/content/hlc.js';
import { EntryStore } from '../src/tables/entry-store.js';
import { TableService } from '../src/tables/table-service.js';
import { fullNodeProof } from '../src/tables/full-nodes.js';
import { partitionOf, partitionPlacementId, PARTITION_COUNT } from '../src/tables/keys.js';
import { TABLE_METHODS } from '../src/tables/rpc.js';

export interface TableSimOptions {
  nodes: number;
  seed: number;
  /** Puts and lookups measured (each on its own bucket). */
  ops: number;
  /** Hypothetical joins averaged for the moved share. */
  joins: number;
}

export interface TableSimReport {
  options: TableSimOptions;
  messagesPerPut: number;
  messagesPerLookup: number;
  messagesPerListedPage: number;
  entriesPerPage: number;
  /** Share of partition copies whose holder changes on one join, averaged, and the ideal 1/(N+1). */
  joinMovedShare: number;
  joinIdealShare: number;
  /** One real join: partitions that moved, entries handed to the new node, messages of the handoff (challenges excluded). */
  join: { partitionsMoved: number; entriesMoved: number; messages: number; dropped: number };
}

const DEFAULTS: TableSimOptions = { nodes: 1000, seed: 1, ops: 60, joins: 50 };
const REPLICAS = 3;
const ENTRIES_PER_LISTED_BUCKET = 250;
const PAGE = 100;

export async function runTableSim(partial: Partial<TableSimOptions> = {}): Promise<TableSimReport> {
  const o: TableSimOptions = { ...DEFAULTS, ...partial };
  const clock = new SimClock();
  const net = new SimNetwork(clock, { seed: o.seed });
  const rand = createPrng(o.seed, 'tables');
  const macKey = Buffer.alloc(32, 7);
  const diskKey = Buffer.alloc(32, 9);
  const ids = Array.from({ length: o.nodes }, (_, i) => `node-${String(i).padStart(5, '0')}`);
  const live = new Set(ids);
  const services = new Map<string, TableService>();
  const counts = new Map<string, number>();
  const log = pino({ level: 'silent' });
  const count = () => [...counts].filter(([m]) => m !== TABLE_METHODS.hello).reduce((n, [, c]) => n + c, 0);

  const service = async (id: string): Promise<TableService> => {
    let s = services.get(id);
    if (s === undefined) {
      const endpoint = net.endpoint(id);
      s = new TableService({
        net: {
          selfId: id,
          live: () => [...live].map((nodeId) => ({ nodeId, weight: 1 })),
          call: (to, method, body, opts) => {
            counts.set(method, (counts.get(method) ?? 0) + 1);
            return endpoint.call(to, method, { from: id, body }, opts);
          },
        },
        store: await EntryStore.open(null, diskKey),
        macKey,
        clock: new HybridClock(id, { now: () => 1_700_000_000_000 + clock.now() }),
        replicas: REPLICAS,
        // Store commits take real time while simulated time runs on; message counts, not times, are measured.
        callTimeoutMs: 3_600_000,
        log,
      });
      services.set(id, s);
    }
    return s;
  };
  const listen = (id: string) =>
    net.listen(id, id, async (method, envelope) => {
      const { from, body } = envelope as { from: string; body: { nonce?: Uint8Array } };
      // The challenge needs no store: answered as the service answers it, without opening one per node.
      if (method === TABLE_METHODS.hello) return { proof: fullNodeProof(macKey, id, body.nonce!) };
      return (await service(id)).handle(method, body, from);
    });
  ids.forEach(listen);

  /** Runs simulated time until `p` settles (store commits are real I/O, so real time passes too). */
  const drive = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    const r = p.finally(() => {
      done = true;
    });
    while (!done) {
      await clock.runFor(5);
      await new Promise((res) => setImmediate(res));
    }
    return r;
  };
  const measure = async (f: () => Promise<unknown>): Promise<number> => {
    const before = count();
    await drive(f());
    // Replies still in flight (the third write, read repairs) count too.
    await clock.runFor(50);
    return count() - before;
  };

  const coordinator = await service(ids[0]!);
  await drive(coordinator.discover());
  const buckets = Array.from({ length: o.ops }, (_, i) => `bucket-${o.seed}-${i}`);
  let putMsgs = 0;
  let getMsgs = 0;
  for (const b of buckets) putMsgs += await measure(() => coordinator.put({ table: 'object', pk: b, sk: 'k' }, Buffer.from('v')));
  for (const b of buckets) getMsgs += await measure(() => coordinator.get({ table: 'object', pk: b, sk: 'k' }));
  const listed = buckets[0]!;
  await drive(coordinator.putMany(Array.from({ length: ENTRIES_PER_LISTED_BUCKET }, (_, i) => ({ key: { table: 'object', pk: listed, sk: `k${String(i).padStart(4, '0')}` }, value: Buffer.from('v') }))));
  await clock.runFor(50);
  let pages = 0;
  let entries = 0;
  let listMsgs = 0;
  let token: string | null | undefined;
  do {
    const t = token;
    listMsgs += await measure(async () => {
      const page = await coordinator.list('object', listed, { limit: PAGE, ...(t ? { token: t } : {}) });
      entries += page.entries.length;
      token = page.token;
    });
    pages++;
  } while (token !== null && pages < 100);

  // Share of partition copies that change holder on one join, over many joining ids.
  const nodesBefore = ids.map((nodeId) => ({ nodeId, weight: 1 }));
  const before = new Placer(nodesBefore);
  const holdersBefore = Array.from({ length: PARTITION_COUNT }, (_, p) => before.place(partitionPlacementId(p), REPLICAS));
  let movedCopies = 0;
  for (let j = 0; j < o.joins; j++) {
    const joiner = `joiner-${o.seed}-${j}-${Math.floor(rand() * 1e9)}`;
    const after = new Placer([...nodesBefore, { nodeId: joiner, weight: 1 }]);
    for (let p = 0; p < PARTITION_COUNT; p++) movedCopies += after.place(partitionPlacementId(p), REPLICAS).filter((h) => !holdersBefore[p]!.includes(h)).length;
  }

  // One real join: a new node whose id takes over the listed bucket's partition, then handoff.
  const used = new Set([partitionOf('object', listed)]);
  let newId = '';
  for (let k = 0; k < 100_000 && newId === ''; k++) {
    const cand = `node-new-${o.seed}-${k}`;
    const after = new Placer([...nodesBefore, { nodeId: cand, weight: 1 }]);
    if ([...used].some((p) => after.place(partitionPlacementId(p), REPLICAS).includes(cand))) newId = cand;
  }
  ids.push(newId);
  live.add(newId);
  listen(newId);
  const afterJoin = new Placer([...ids].map((nodeId) => ({ nodeId, weight: 1 })));
  const movedParts = [...used].filter((p) => afterJoin.place(partitionPlacementId(p), REPLICAS).includes(newId));
  const displaced = movedParts.flatMap((p) => holdersBefore[p]!.filter((h) => !afterJoin.place(partitionPlacementId(p), REPLICAS).includes(h)));
  const before2 = count();
  for (const id of displaced) {
    const s = await service(id);
    await drive(s.discover());
    await drive(s.syncNow());
  }
  await clock.runFor(100);
  const joined = await service(newId);
  const dropped = displaced.reduce((n, id) => n + services.get(id)!.counters.partitionsDropped, 0);
  const report: TableSimReport = {
    options: o,
    messagesPerPut: putMsgs / o.ops,
    messagesPerLookup: getMsgs / o.ops,
    messagesPerListedPage: listMsgs / pages,
    entriesPerPage: entries / pages,
    joinMovedShare: movedCopies / (o.joins * PARTITION_COUNT * REPLICAS),
    joinIdealShare: 1 / (o.nodes + 1),
    join: { partitionsMoved: movedParts.length, entriesMoved: joined.counters.entriesApplied, messages: count() - before2, dropped },
  };
  for (const s of services.values()) {
    await s.stop();
    await s.store.close();
  }
  return report;
}

export function formatTableSim(r: TableSimReport): string {
  const o = r.options;
  return [
    `tessera table simulation: ${o.nodes} full nodes, ${REPLICAS} copies per partition, seed ${o.seed} (production table code, simulated network)`,
    `  messages per put              ${r.messagesPerPut.toFixed(2)}   (requests; replies ride on them)`,
    `  messages per point lookup     ${r.messagesPerLookup.toFixed(2)}`,
    `  messages per listed page      ${r.messagesPerListedPage.toFixed(2)}   (${r.entriesPerPage.toFixed(0)} entries per page)`,
    `  partition copies moved by one join  ${(r.joinMovedShare * 100).toFixed(3)} %  (ideal 1/${o.nodes + 1} = ${(r.joinIdealShare * 100).toFixed(3)} %, over ${o.joins} joins)`,
    `  one real join: ${r.join.partitionsMoved} partition(s) with data moved, ${r.join.entriesMoved} entries handed to the new node, ${r.join.dropped} old copies dropped, ${r.join.messages} table messages`,
  ].join('\n');
}

export async function main(args: string[]): Promise<void> {
  const opts: Partial<TableSimOptions> = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const v = Number(args[++i]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} needs a whole number >= 1`);
    if (flag === '--nodes') opts.nodes = v;
    else if (flag === '--seed') opts.seed = v;
    else if (flag === '--ops') opts.ops = v;
    else if (flag === '--joins') opts.joins = v;
    else throw new Error(`unknown argument ${flag}; usage: npm run bench -- tablesim [--nodes N] [--seed S] [--ops K] [--joins J]`);
  }
  process.stdout.write(formatTableSim(await runTableSim(opts)) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
