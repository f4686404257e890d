/**
 * A standalone NBD server over memory volumes, for tests and benchmarks that need it in its own
 * process. Prints the bound address as one JSON line on stdout, then serves until SIGTERM/SIGINT.
 *
 *   node nbd-memory-server.js --export disk=1G [--export other=64M] [--host 127.0.0.1 --port 0 | --socket PATH]
 *                             [--min-block 512] [--capacity 2G]
 */
import { parseArgs } from 'node:util';
import { NbdServer } from '../../src/block/nbd/index.js';
import { MemoryVolumeProvider, type MemoryVolumeSpec } from './memory-device.js';
import { createLogger } from '../../src/log.js';

const UNITS: Record<string, number> = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 };

export function parseSize(s: string): number {
  const m = /^(\d+)([KMGT]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size "${s}" (expected e.g. 512M or 1G)`);
  return Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      export: { type: 'string', multiple: true, default: ['disk=256M'] },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      socket: { type: 'string' },
      'min-block': { type: 'string', default: '512' },
      capacity: { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
    },
  });
  const specs: MemoryVolumeSpec[] = values.export!.map((e) => {
    const [name, size] = e.split('=');
    if (!name || !size) throw new Error(`bad --export "${e}" (expected NAME=SIZE)`);
    return {
      name,
      size: parseSize(size),
      minBlockSize: Number(values['min-block']),
      ...(values.capacity ? { capacityBytes: parseSize(values.capacity) } : {}),
    };
  });
  const logger = createLogger({ level: values['log-level'] as 'warn', pretty: false });
  const server = new NbdServer({ provider: new MemoryVolumeProvider(specs), logger });
  const addr = await server.listen(values.socket ? { socket: values.socket } : { host: values.host!, port: Number(values.port) });
  process.stdout.write(JSON.stringify(addr) + '\n');
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`nbd-memory-server: ${(err as Error).message}\n`);
  process.exit(1);
});
