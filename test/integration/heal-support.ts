/** Shared pieces of the self-healing tests: what each node really stores, listed through its API or its data dir. */
import type { LocalCluster } from '../../src/cli/local-cluster.js';
import { chunkIdOf, deriveClusterKeys, encryptChunk } from '../../src/content/crypto.js';
import { encodeShards } from '../../src/content/erasure.js';
import { encodeStripe, type Stripe } from '../../src/files/erasure-stripe.js';

/** Timing that makes failure detection take about two seconds. */
export const FAST_FAILURE = ['--probe-interval', '200', '--suspicion-timeout', '1200'];

/** node index → set of chunk ids it stores now (asked of the node itself). */
export async function holdings(cluster: LocalCluster, which: number[]): Promise<Map<number, Set<string>>> {
  const out = new Map<number, Set<string>>();
  await Promise.all(
    which.map(async (i) => {
      const r = await cluster.node(i).client.chunks();
      if (r.truncated) throw new Error(`node ${i} listed only part of its chunks`);
      out.set(i, new Set(r.ids));
    }),
  );
  return out;
}

/** How many of the listed nodes hold each id. */
export function copyCounts(h: Map<number, Set<string>>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const ids of h.values()) for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

export function running(cluster: LocalCluster): number[] {
  return cluster.nodes.filter((n) => cluster.running(n.index)).map((n) => n.index);
}

/**
 * The stripes a put of `data` with k+m makes, computed here as the writer does (encryption is
 * convergent, so the same bytes give the same shards): descriptor id (hex) → stripe. The test
 * then looks for exactly these ids on the nodes, whatever engine stores them.
 */
export async function expectedStripes(cluster: LocalCluster, data: Buffer, chunkSize: number, k: number, m: number): Promise<Map<string, Stripe>> {
  const keys = deriveClusterKeys(cluster.keys.dataKey!);
  const out = new Map<string, Stripe>();
  for (let at = 0; at < data.length; at += chunkSize) {
    const c = encryptChunk(data.subarray(at, Math.min(data.length, at + chunkSize)), keys.convergenceSecret);
    const { shards } = await encodeShards(c.data, { k, m });
    const st: Stripe = { c: c.id, size: c.data.length, k, m, s: shards.map((b) => chunkIdOf(b)) };
    out.set(chunkIdOf(encodeStripe(st)).toString('hex'), st);
  }
  return out;
}

/** Live holders of each shard of a stripe, and how many distinct nodes hold one. */
export function stripeSpread(st: Stripe, h: Map<number, Set<string>>): { perShard: number[][]; distinctNodes: number } {
  const perShard = st.s.map((s) => [...h].filter(([, ids]) => ids.has(s.toString('hex'))).map(([i]) => i));
  return { perShard, distinctNodes: new Set(perShard.flat()).size };
}
