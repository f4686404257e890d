/** In-process table services wired by direct calls, for unit tests of the replication logic. */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { HybridClock } from '../../../src/content/hlc.js';
import { TesseraError } from '../../../src/errors.js';
import { encodeControl, decodeControlUnknown } from '../../../src/wire/control.js';
import { EntryStore } from '../../../src/tables/entry-store.js';
import { TableService } from '../../../src/tables/table-service.js';

export interface Mesh {
  readonly ids: string[];
  readonly services: Map<string, TableService>;
  readonly down: Set<string>;
  /** Members without the data key: they answer no table method. */
  readonly storageOnly: Set<string>;
  calls: Map<string, number>;
  add(id: string): Promise<TableService>;
  close(): Promise<void>;
}

export async function mesh(n: number, opts: { storageOnly?: number; replicas?: number; macKey?: Buffer } = {}): Promise<Mesh> {
  const macKey = opts.macKey ?? randomBytes(32);
  const diskKey = randomBytes(32);
  const services = new Map<string, TableService>();
  const down = new Set<string>();
  const storageOnly = new Set<string>();
  const ids: string[] = [];
  const m: Mesh = {
    ids, services, down, storageOnly, calls: new Map(),
    async add(id) {
      ids.push(id);
      const svc = new TableService({
        net: {
          selfId: id,
          live: () => ids.filter((x) => !down.has(x)).map((nodeId) => ({ nodeId, weight: 1 })),
          call: async (to, method, body) => {
            m.calls.set(method, (m.calls.get(method) ?? 0) + 1);
            if (down.has(to) || down.has(id)) throw new TesseraError('UNAVAILABLE', `node ${to} is down`);
            if (storageOnly.has(to)) throw new TesseraError('BAD_INPUT', `unknown method '${method}'`);
            const target = services.get(to);
            if (!target) throw new TesseraError('UNAVAILABLE', `no node ${to}`);
            // Through the real codec, as on the wire.
            const reply = await target.handle(method, decodeControlUnknown(encodeControl(body)), id);
            return decodeControlUnknown(encodeControl(reply));
          },
        },
        store: await EntryStore.open(null, diskKey),
        macKey,
        clock: new HybridClock(id),
        ...(opts.replicas !== undefined ? { replicas: opts.replicas } : {}),
        log: pino({ level: 'silent' }),
      });
      services.set(id, svc);
      return svc;
    },
    async close() {
      for (const s of services.values()) {
        await s.stop();
        await s.store.close();
      }
    },
  };
  for (let i = 0; i < n; i++) await m.add(`node-${i}`);
  for (let i = 0; i < (opts.storageOnly ?? 0); i++) {
    const id = `storage-${i}`;
    ids.push(id);
    storageOnly.add(id);
  }
  return m;
}
