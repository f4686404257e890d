/**
 * Names as objects at scale, on 5 full nodes and a storage-only one: 10,000 small named files
 * (the first ones through the real `tessera put --name`, the rest through the HTTP API with a
 * bounded number in flight), listed through `tessera ls` with prefixes and `--limit` pages that
 * must concatenate to the sorted model exactly; no name in any data directory's raw bytes, and the
 * storage-only node serves no names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';
import { isTesseraError } from '../../src/errors.js';
import type { FileEntryView } from '../../src/api/types.js';
import { collect, filesContaining, pieces } from './files-support.js';

const run = promisify(execFile);
const TIMING = ['--probe-interval', '200', '--suspicion-timeout', '1500', '--anti-entropy-ms', '1000'];
const FILES = Number(process.env.TESSERA_NAMES_AT_SCALE ?? 10_000);
/** Puts through the `tessera` command (a process each); the rest go through the HTTP API. */
const CLI_PUTS = Math.min(150, FILES);
const CLI_IN_FLIGHT = 3;
const API_IN_FLIGHT = 16;
const MARK = 'NAMEMARK';

const nameOf = (i: number) => `dir-${i % 7}/f-${MARK}-${String(i).padStart(5, '0')}${i % 13 === 0 ? '-é' : ''}`;
const bodyOf = (i: number) => Buffer.from(`body of file ${i}\n`.repeat(1 + (i % 5)));
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Runs `count` jobs with at most `inFlight` at once. */
async function bounded(count: number, inFlight: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) await job(next++);
  }));
}

test('10,000 names as objects: CLI and API puts, paged prefix listings equal the model, no name on any disk', { timeout: 1_800_000 }, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 5, nodeArgs: TIMING, logLevel: 'warn' });
  t.after(() => cluster.destroy());
  const storageOnly = await cluster.addNode({ keys: { clusterId: cluster.keys.clusterId, clusterSecret: cluster.keys.clusterSecret } });
  await cluster.waitForMembers({ alive: 6 });
  const tmp = await mkdtemp(join(tmpdir(), 'tessera-names-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const tessera = async (node: number, ...args: string[]) =>
    run(process.execPath, [CLI_PATH, ...args, '--data', cluster.node(node).dataDir], { env: { ...process.env, TESSERA_API: '', TESSERA_TOKEN: '' }, maxBuffer: 64 << 20, timeout: 120_000 });

  await bounded(CLI_PUTS, CLI_IN_FLIGHT, async (i) => {
    const src = join(tmp, `src-${i}`);
    await writeFile(src, bodyOf(i));
    const { stdout } = await tessera(i % 5, 'put', src, '--name', nameOf(i));
    assert.match(stdout, /^tsr1[a-z2-7]+\n$/);
  });
  await bounded(FILES - CLI_PUTS, API_IN_FLIGHT, async (j) => {
    const i = CLI_PUTS + j;
    await cluster.node(i % 5).client.put(pieces(bodyOf(i)), { name: nameOf(i) });
  });
  const model = Array.from({ length: FILES }, (_, i) => nameOf(i)).sort(byteOrder);
  t.diagnostic(`${CLI_PUTS} names put through the tessera command, ${FILES - CLI_PUTS} through the HTTP API (${API_IN_FLIGHT} in flight)`);

  /** Every page through `tessera ls`, following the next-page command it prints on stderr. */
  const lsAll = async (node: number, prefix: string | undefined, limit: number): Promise<string[]> => {
    const out: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < FILES / limit + 2; page++) {
      const { stdout, stderr } = await tessera(node, 'ls', ...(prefix ? [prefix] : []), '--limit', String(limit), ...(after !== undefined ? ['--after', after] : []), '--json');
      const list = JSON.parse(stdout) as FileEntryView[];
      assert.ok(list.length <= limit, `a page of ${list.length} names for --limit ${limit}`);
      out.push(...list.map((f) => f.name));
      const next = /--after (.+)$/m.exec(stderr);
      if (next === null) return out;
      after = next[1]!.replace(/^'(.*)'$/, '$1');
      assert.equal(after, list[list.length - 1]!.name);
    }
    throw new Error('the listing did not end');
  };

  await t.test('paged listings through `tessera ls` equal the sorted model, with and without a prefix', async () => {
    assert.deepEqual(await lsAll(1, undefined, 1000), model);
    assert.deepEqual(await lsAll(2, 'dir-3/', 333), model.filter((n) => n.startsWith('dir-3/')));
    assert.deepEqual(await lsAll(3, `dir-6/f-${MARK}-001`, 7), model.filter((n) => n.startsWith(`dir-6/f-${MARK}-001`)));
    assert.deepEqual(await lsAll(4, 'nothing-here/', 50), []);
  });

  await t.test('names read back by get through any node; an overwrite and a removal are seen everywhere', async () => {
    for (const i of [0, 13, CLI_PUTS - 1, CLI_PUTS, FILES - 1]) assert.ok((await collect((await cluster.node((i + 2) % 5).client.get(nameOf(i))).stream)).equals(bodyOf(i)), nameOf(i));
    await cluster.node(0).client.put(pieces(Buffer.from('new')), { name: nameOf(1) });
    assert.equal((await collect((await cluster.node(4).client.get(nameOf(1))).stream)).toString(), 'new');
    await tessera(3, 'rm', nameOf(2));
    await assert.rejects(cluster.node(1).client.get(nameOf(2)), (e) => isTesseraError(e, 'NOT_FOUND'));
    const page = await cluster.node(2).client.ls({ prefix: 'dir-2/', limit: 1 });
    assert.notEqual(page.files[0]?.name, nameOf(2));
  });

  await t.test('the storage-only node serves no names, and no data directory holds one', async () => {
    await assert.rejects(storageOnly.client.ls(), (e) => isTesseraError(e, 'AUTH'));
    await assert.rejects(storageOnly.client.get(nameOf(0)), (e) => isTesseraError(e, 'AUTH'));
    assert.deepEqual(await filesContaining(cluster.dir, [Buffer.from(MARK)]), []);
  });
});
