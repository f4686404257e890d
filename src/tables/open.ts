/** Opens a full node's tables: the encrypted store, the replicated service and the typed tables over it. */
import { deriveClusterKeys } from '../content/index.js';
import { HybridClock } from '../content/index.js';
import type { Logger } from '../log.js';
import type { PeerHandlers } from '../net/index.js';
import { BucketTable, ObjectTable } from './buckets-objects.js';
import { EntryStore } from './entry-store.js';
import { TableService, type TableNet } from './table-service.js';
import { TABLE_METHODS } from './rpc.js';

/** The method prefix of the table protocol, which the tables answer on every full node. */
const TABLE_RPC_PREFIX = TABLE_METHODS.hello.slice(0, TABLE_METHODS.hello.indexOf('.') + 1);

export interface OpenTablesOptions {
  /** Directory of the table store (created if missing). */
  readonly dir: string;
  readonly dataKey: Buffer;
  readonly net: TableNet;
  readonly replicas?: number;
  readonly syncIntervalMs?: number;
  readonly log: Logger;
}

export interface Tables {
  readonly service: TableService;
  readonly buckets: BucketTable;
  readonly objects: ObjectTable;
  close(): Promise<void>;
}

export async function openTables(o: OpenTablesOptions): Promise<Tables> {
  const keys = deriveClusterKeys(o.dataKey);
  const store = await EntryStore.open(o.dir, keys.tableDiskKey);
  const service = new TableService({
    net: o.net,
    store,
    macKey: keys.tableMacKey,
    clock: new HybridClock(o.net.selfId),
    ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
    ...(o.syncIntervalMs !== undefined ? { syncIntervalMs: o.syncIntervalMs } : {}),
    log: o.log.child({ component: 'tables' }),
  });
  return {
    service,
    buckets: new BucketTable(service),
    objects: new ObjectTable(service),
    async close() {
      await service.stop();
      await store.close();
    },
  };
}

/** Hands the table protocol's methods (table.*) to the node's router: the tables answer them on every full node. */
export function registerTableHandlers(service: TableService, handlers: PeerHandlers): void {
  handlers.register(TABLE_RPC_PREFIX, async (req) => ({ body: await service.handle(req.method, req.body, req.peer.nodeId) }));
}
