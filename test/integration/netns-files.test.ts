/**
 * File workloads on real node processes in separate network namespaces (test/netns/harness.ts):
 * puts through the majority while one host is cut off, checked afterwards against what the clients
 * were told (every acknowledged file, byte for byte, through every host); and a large file put and
 * read back across links with 50 ± 10 ms of delay, resets and stalls from the fault proxy.
 * Skipped, with the reason, where namespaces cannot be made (not root, no `ip netns`, no nft).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { connect } from '../../src/client/index.js';
import { createPrng } from '../../src/cluster/sim/prng.js';
import { randomInt } from '../../src/cluster/clock.js';
import { waitFor } from '../../src/cli/local-cluster.js';
import { NetnsCluster, cleanStale, leftovers, netnsUnavailable } from '../netns/harness.js';

// Fast detection, as in netns-membership.test.ts.
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
const DEAD_WITHIN_MS = 15_000;
const CONVERGE_MS = 40_000;
const KiB = 1024;
const MiB = 1024 * KiB;

const why = await netnsUnavailable();
if (why === undefined) {
  const stale = await cleanStale();
  if (stale.length > 0) process.stderr.write(`netns: removed leftovers of a crashed run: ${stale.join(' ')}\n`);
}
const skip = why === undefined ? false : `netns tests skipped: ${why}`;

async function cluster(t: TestContext, hosts: number, extra: Partial<Parameters<typeof NetnsCluster.create>[0]> = {}): Promise<NetnsCluster> {
  const c = await NetnsCluster.create({ hosts, nodeArgs: TIMING, ...extra });
  t.after(async () => {
    await c.destroy();
    assert.deepEqual(await leftovers(), [], 'teardown left namespaces or links behind');
  });
  await c.start();
  t.diagnostic(`${hosts} hosts up: ${c.hosts.map((h) => `${h.ns}=${h.ip}`).join(' ')}`);
  await c.waitConverged(CONVERGE_MS);
  return c;
}

async function sha256Of(stream: AsyncIterable<Buffer>): Promise<{ sha: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const b of stream) {
    hash.update(b);
    bytes += b.length;
  }
  return { sha: hash.digest('hex'), bytes };
}

interface Acked {
  name: string;
  sha: string;
  size: number;
  fileId: string;
  phase: string;
}

test('partition with puts: puts through the majority keep succeeding while a host is cut off; after healing every acknowledged file reads back through every host', { skip, timeout: 240_000 }, async (t) => {
  const c = await cluster(t, 4);
  const cut = 3;
  const majority = [0, 1, 2];
  const random = createPrng(Number(process.env.TESSERA_NETNS_SEED ?? 1), 'partition-puts');
  const acked: Acked[] = [];
  const attempts = { before: 0, during: 0, after: 0 };
  const acks = { before: 0, during: 0, after: 0 };
  const errors: string[] = [];
  let phase: 'before' | 'during' | 'after' = 'before';
  let seq = 0;

  // One put through a random majority host; bounded by the client's own timeouts.
  const putOne = async (): Promise<void> => {
    const p = phase;
    const via = c.host(majority[randomInt(random, majority.length)]!);
    const body = randomBytes(64 * KiB + randomInt(random, 192 * KiB + 1));
    const chunkSize = [16, 32, 64][randomInt(random, 3)]! * KiB;
    const name = `part/${seq++}`;
    attempts[p]++;
    try {
      const r = await via.client.put(Readable.from([body]), { name, replicas: 3, quorum: 2, chunkSize });
      acks[p]++;
      acked.push({ name, sha: createHash('sha256').update(body).digest('hex'), size: body.length, fileId: r.fileId, phase: p });
    } catch (e) {
      // Unacknowledged: it may or may not exist, so the checker expects nothing of it.
      errors.push(`${name} (${p}) via ${via.index}: ${(e as Error).message}`);
    }
  };

  // Before: a few puts on the whole cluster.
  for (let k = 0; k < 4; k++) await putOne();

  // During: the cut, with puts running until the majority has declared the host dead and then a
  // while longer; bounded in puts and in time.
  phase = 'during';
  const cutAt = Date.now();
  await c.isolate(cut);
  let declaredDeadAfter = -1;
  const watcher = waitFor('the majority to declare the isolated host dead', DEAD_WITHIN_MS, async () => {
    for (const i of majority) if ((await c.stateOf(i, cut)) !== 'dead') return false;
    declaredDeadAfter = Date.now() - cutAt;
    return true;
  }).catch((e: unknown) => errors.push(`detection: ${(e as Error).message}`));
  let ackedAfterDeath = 0;
  for (let k = 0; k < 60 && Date.now() - cutAt < 25_000; k++) {
    const deadBefore = declaredDeadAfter >= 0;
    const before = acks.during;
    await putOne();
    if (deadBefore && acks.during > before) ackedAfterDeath++;
    if (deadBefore && ackedAfterDeath >= 8) break;
  }
  await watcher;
  const partitionMs = Date.now() - cutAt;

  // After: heal, and a few more puts while membership converges.
  await c.healAll();
  phase = 'after';
  const healedAt = Date.now();
  for (let k = 0; k < 4; k++) await putOne();
  const convergedIn = (await c.waitConverged(CONVERGE_MS), Date.now() - healedAt);

  // The history check: what the clients were told against what the cluster returns, through every
  // host including the one that was cut off. One deadline for the whole check.
  let reads = 0;
  let bytesRead = 0;
  let bytesLost = 0;
  const failures: string[] = [];
  const checkEnd = Date.now() + 90_000;
  for (const h of c.hosts) {
    for (const a of acked) {
      const got = await waitFor(`${a.name} through host ${h.index}`, Math.max(500, checkEnd - Date.now()), async () => {
        const r = await h.client.get(a.fileId);
        return sha256Of(r.stream as AsyncIterable<Buffer>);
      }).catch((e: unknown) => {
        failures.push(`${a.name} via host ${h.index}: ${(e as Error).message}`);
        return undefined;
      });
      reads++;
      if (got?.sha === a.sha && got.bytes === a.size) {
        bytesRead += got.bytes;
      } else {
        bytesLost += a.size;
        if (got !== undefined) failures.push(`${a.name} via host ${h.index}: wrong bytes (${got.bytes} of ${a.size})`);
      }
    }
  }
  // Names too: the listing through every host holds every acknowledged name.
  const namesMissing: string[] = [];
  for (const h of c.hosts) {
    const names = new Set((await h.client.ls()).files.map((f) => f.name));
    for (const a of acked) if (!names.has(a.name)) namesMissing.push(`${a.name}@${h.index}`);
  }

  t.diagnostic(
    `puts attempted/acknowledged: before ${attempts.before}/${acks.before}, during the cut ${attempts.during}/${acks.during} ` +
      `(${ackedAfterDeath} after the majority declared host ${cut} dead at ${declaredDeadAfter} ms), after healing ${attempts.after}/${acks.after}; ` +
      `cut lasted ${partitionMs} ms; converged ${convergedIn} ms after healing`,
  );
  t.diagnostic(`history check: ${acked.length} acknowledged files × ${c.hosts.length} hosts = ${reads} reads, ${bytesRead} bytes verified, ${bytesLost} bytes lost; names missing from listings: ${namesMissing.length}`);
  if (errors.length > 0) t.diagnostic(`unacknowledged: ${errors.slice(0, 5).join(' | ')}`);

  assert.ok(declaredDeadAfter >= 0, `the majority never declared host ${cut} dead: ${errors.join(' | ')}`);
  assert.ok(acks.before > 0 && acks.after > 0, 'puts succeed on a whole cluster');
  assert.ok(ackedAfterDeath > 0, 'puts through the majority succeed while a host is cut off');
  assert.equal(bytesLost, 0, `bytes lost:\n${failures.slice(0, 10).join('\n')}`);
  assert.deepEqual(namesMissing, [], 'every acknowledged name is listed through every host');
});

const BIG = Number(process.env.TESSERA_NETNS_BIG_MIB ?? 256) * MiB;
const BIG_CAP_MS = 240_000;

test(`latency and loss with data: a ${BIG / MiB} MiB file put and read back through 50 ± 10 ms, resets and stalls`, { skip, timeout: BIG_CAP_MS + 120_000 }, async (t) => {
  const faults = { delayMs: 50, jitterMs: 10, resetFraction: 0.02, stallFraction: 0.02, stallMs: 500, ...(JSON.parse(process.env.TESSERA_NETNS_FAULTS ?? '{}') as object) };
  // The node's default probe timing: the fast timing of the membership tests gives a probe, and the
  // dial it may start, 300 ms, less than a TLS handshake takes over four 50 ms crossings.
  const c = await cluster(t, 4, { proxy: faults, nodeArgs: [], logLevel: process.env.TESSERA_NETNS_LOG ?? 'warn' });
  const random = createPrng(Number(process.env.TESSERA_NETNS_SEED ?? 1), 'big-file');
  const deadline = Date.now() + BIG_CAP_MS;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), BIG_CAP_MS);
  t.after(() => clearTimeout(timer));
  // The harness's clients give up after 5 s of silence; a large write waits on quorums across
  // delayed, stalled links, so these wait longer (still idle time, not total time).
  const writer = connect({ api: c.host(0).api, token: c.host(0).apiToken, tls: c.host(0).apiTls, timeoutMs: 60_000 });
  const reader = connect({ api: c.host(2).api, token: c.host(2).apiToken, tls: c.host(2).apiTls, timeoutMs: 60_000 });

  // The source: BIG bytes of pseudo-random data in 1 MiB pieces, hashed on the way out.
  const SEG = MiB;
  const seed = randomBytes(SEG);
  let srcHash = createHash('sha256');
  async function* source(): AsyncGenerator<Buffer> {
    for (let off = 0; off < BIG; off += SEG) {
      const piece = Buffer.from(seed);
      piece.writeUInt32BE(off / SEG, randomInt(random, SEG - 4));
      srcHash.update(piece);
      yield piece;
    }
  }
  const settle = Number(process.env.TESSERA_NETNS_SETTLE_MS ?? 0);
  if (settle > 0) await new Promise((r) => setTimeout(r, settle));
  const t0 = Date.now();
  const endings = () => {
    const all: Record<string, number> = {};
    for (const h of c.hosts) for (const [k, v] of Object.entries(h.proxy!.stats.endings)) all[k] = (all[k] ?? 0) + v;
    return Object.entries(all).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  };
  // Besides the 2 % of connections reset at random (peer connections are few and long-lived, so
  // that alone may hit none), a bounded number of open peer connections is reset during the put.
  const FORCED_RESETS = 3;
  let forced = 0;
  let putting = true;
  const resetter = (async () => {
    for (let k = 0; k < 200 && putting && forced < FORCED_RESETS; k++) {
      await new Promise((r) => setTimeout(r, 100));
      if (k % 20 !== 19) continue;
      // Which host's proxy fronts a pair's one connection depends on who dialled first, so a
      // host picked at random may front none: try every host, starting from a random one.
      const first = randomInt(random, c.hosts.length);
      for (let i = 0; i < c.hosts.length; i++) {
        if (c.host((first + i) % c.hosts.length).proxy!.resetOne()) { forced++; break; }
      }
    }
  })();
  // An unacknowledged put may be retried by its client (the name then points at the last one).
  let put: Awaited<ReturnType<typeof writer.put>> | undefined;
  const putErrors: string[] = [];
  for (let attempt = 0; attempt < 3 && put === undefined && Date.now() < deadline; attempt++) {
    srcHash = createHash('sha256');
    put = await writer.put(source(), { name: 'big', replicas: 3, quorum: 2, chunkSize: MiB, signal: abort.signal }).catch((e: unknown) => {
      const logs = c.hosts.map((h) => `host ${h.index}: ${h.logTail.split('\n').filter((l) => /clos|lost|retir|timed out|violation/.test(l)).slice(-6).join('\n')}`).join('\n');
      putErrors.push(`attempt ${attempt + 1} failed after ${Date.now() - t0} ms (proxied connections ended: ${endings()}): ${(e as Error).message}\n${logs}`);
      return undefined;
    });
  }
  putting = false;
  await resetter;
  if (put === undefined) throw new Error(putErrors.join('\n'));
  const putMs = Date.now() - t0;
  const want = srcHash.digest('hex');

  const t1 = Date.now();
  const r = await reader.get(put.fileId, { signal: abort.signal });
  const got = await sha256Of(r.stream as AsyncIterable<Buffer>);
  const getMs = Date.now() - t1;
  const withinCap = Date.now() <= deadline;

  const stats = c.hosts.map((h) => h.proxy!.stats);
  const sum = (k: 'connections' | 'resets' | 'stalls' | 'bytes') => stats.reduce((a, s) => a + s[k], 0);
  const delays = stats.flatMap((s) => s.delays);
  const mean = delays.reduce((a, b) => a + b, 0) / Math.max(1, delays.length);
  const rate = (ms: number) => (BIG / MiB / (ms / 1000)).toFixed(1);
  t.diagnostic(`${BIG / MiB} MiB, R=3 W=2, 1 MiB chunks: put via host 0 in ${putMs} ms (${rate(putMs)} MiB/s, ${putErrors.length} failed attempt(s) before it, ${forced} peer connections reset during it), get via host 2 in ${getMs} ms (${rate(getMs)} MiB/s); SHA-256 ${got.sha === want ? 'matches' : 'DIFFERS'}`);
  t.diagnostic(`fault proxies: ${sum('connections')} connections, ${sum('resets')} reset, ${sum('stalls')} stalls of ${faults.stallMs} ms, ${(sum('bytes') / MiB).toFixed(0)} MiB forwarded, mean delay ${mean.toFixed(1)} ms over ${delays.length} segments; connections ended: ${endings()}`);

  if (putErrors.length > 0) t.diagnostic(`failed put attempts: ${putErrors.map((e) => e.split('\n')[0]).join(' | ')}`);
  assert.ok(withinCap, `put and get took longer than ${BIG_CAP_MS} ms`);
  assert.equal(got.bytes, BIG);
  assert.equal(got.sha, want, 'the file read back differs from the one written');
  assert.ok(sum('bytes') > BIG, 'the replicas crossed the fault proxies');
  assert.ok(sum('stalls') > 0, 'stalls were injected');
  assert.ok(sum('resets') > 0, 'peer connections were reset');
  assert.ok(mean >= 40 && mean <= 60, `mean delay ${mean}`);
});
