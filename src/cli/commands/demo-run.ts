/** `tessera demo`: a local cluster of node processes that stores a file, reads it back and prints the figures. */
import { createHash } from 'node:crypto';
import { TesseraError, badInput } from '../../errors.js';
import { majorityQuorum } from '../../content/majority.js';
import { formatBytes, parseSize } from '../format.js';
import { LocalCluster } from '../local-cluster.js';
import { peersTable } from './peers.js';
import { randomStream } from '../random-stream.js';

export interface DemoFlags {
  nodes: string;
  size: string;
  keep?: boolean;
  json?: boolean;
}

const DEMO_FILE_NAME = 'demo.bin';
/** Largest demo file: the demo is a show of the system, not a load test (that is `npm run bench -- files`). */
const MAX_DEMO_BYTES = 4 * 2 ** 30;

async function* hashing(source: AsyncIterable<Buffer>, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  for await (const piece of source) {
    hash.update(piece);
    yield piece;
  }
}

const rate = (bytes: number, ms: number) => (ms > 0 ? bytes / (1 << 20) / (ms / 1000) : Infinity);

/** Anything that is not already a TesseraError becomes one line naming the step that failed. */
function stepError(step: string, err: unknown): TesseraError {
  if (err instanceof TesseraError) return new TesseraError(err.code, `demo: ${step} failed: ${err.message}`);
  return new TesseraError('INTERNAL', `demo: ${step} failed: ${(err as Error)?.message ?? String(err)}`);
}

async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw stepError(name, err);
  }
}

export async function runDemo(flags: DemoFlags): Promise<void> {
  const count = Number(flags.nodes);
  if (!Number.isInteger(count) || count < 1 || count > 16) throw badInput('--nodes must be a whole number from 1 to 16');
  const size = parseSize(flags.size, '--size');
  if (size < 1 || size > MAX_DEMO_BYTES) throw badInput(`--size must be from 1 byte to ${formatBytes(MAX_DEMO_BYTES)}`);
  const say = (s: string) => {
    if (!flags.json) process.stdout.write(s + '\n');
  };
  const t0 = Date.now();
  say(`starting ${count} tessera nodes on 127.0.0.1 ...`);
  const { LocalCluster } = await import('../local-cluster.js');
  const cluster = await step('starting the nodes', () =>
    LocalCluster.create({ nodes: count, logLevel: 'warn', detached: flags.keep === true }),
  );
  // Ctrl-C must not leave node processes and their data directories behind.
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write('tessera: demo interrupted; stopping the nodes\n');
    void cluster.destroy().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let kept = false;
  try {
    await step('forming the cluster', () => cluster.waitForMembers({ alive: count }));
    const formedMs = Date.now() - t0;
    const peers = await cluster.node(count - 1).client.peers();
    say(`cluster formed in ${formedMs} ms; membership as seen by node ${count - 1}:\n`);
    say(peersTable(peers));

    const writer = cluster.node(0);
    const reader = cluster.node(count > 1 ? 1 : 0);
    const replicas = Math.min(3, count);
    const quorum = majorityQuorum(replicas);
    say(`\nput: ${formatBytes(size)} of random bytes through node 0 (replicas ${replicas}, quorum ${quorum}) ...`);
    const putHash = createHash('sha256');
    const putStart = Date.now();
    const put = await step('put', () =>
      writer.client.put(hashing(randomStream(size), putHash), { name: DEMO_FILE_NAME, replicas, quorum }),
    );
    const putMs = Date.now() - putStart;
    const putSha = putHash.digest('hex');
    say(`  stored in ${putMs} ms: ${rate(size, putMs).toFixed(1)} MiB/s, ${put.chunks} chunks, policy ${put.policy}`);
    say(`  file id ${put.fileId}`);

    say(`get: reading it back through node ${reader.index} ...`);
    const getHash = createHash('sha256');
    const getStart = Date.now();
    const got = await step('get', async () => {
      const res = await reader.client.get(put.fileId);
      let bytes = 0;
      for await (const piece of res.stream as AsyncIterable<Buffer>) {
        bytes += piece.length;
        getHash.update(piece);
      }
      return bytes;
    });
    const getMs = Date.now() - getStart;
    const getSha = getHash.digest('hex');
    say(`  read in ${getMs} ms: ${rate(got, getMs).toFixed(1)} MiB/s`);
    say(`\nsha256 of what was put: ${putSha}`);
    say(`sha256 of what was got: ${getSha}`);
    if (got !== size) throw new TesseraError('CORRUPT', `demo: get returned ${got} bytes, put stored ${size}`);
    if (getSha !== putSha) throw new TesseraError('CORRUPT', 'demo: the file read back differs from the file stored (SHA-256 mismatch)');
    say('checksums match');

    if (flags.json) {
      process.stdout.write(
        JSON.stringify({
          nodes: count,
          formedMs,
          peers,
          size,
          fileId: put.fileId,
          put: { node: 0, ms: putMs, mibPerSec: rate(size, putMs), sha256: putSha, chunks: put.chunks, policy: put.policy },
          get: { node: reader.index, ms: getMs, mibPerSec: rate(got, getMs), sha256: getSha },
          match: true,
        }) + '\n',
      );
    }
    if (flags.keep) {
      const n0 = cluster.node(0);
      say(`\nthe cluster keeps running in ${cluster.dir}; try:`);
      say(`  tessera ls --data ${n0.dataDir}`);
      say(`  tessera stat ${DEMO_FILE_NAME} --data ${reader.dataDir}`);
      say(`  tessera get ${DEMO_FILE_NAME} --data ${reader.dataDir} -o ${DEMO_FILE_NAME}`);
      say(`  tessera put FILE --name NAME --api ${n0.api} --token ${n0.apiToken}`);
      for (const n of cluster.nodes) say(`  tessera status --data ${n.dataDir}      # node ${n.index}`);
      say(`stop it with: kill ${cluster.nodes.map((n) => n.proc?.pid).join(' ')}   (then: rm -r ${cluster.dir})`);
      for (const n of cluster.nodes) n.proc?.unref();
      kept = true;
    }
  } catch (err) {
    if (!interrupted) await cluster.destroy();
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (kept) return;
  await step('stopping the nodes', () => cluster.destroy());
  say('\nstopped; all nodes left the cluster cleanly');
}
