/** Shared pieces of the self-healing tests: what each node really stores, listed through its API or its data dir. */
import { readFile } from 'node:fs/promises';
import type { LocalCluster } from '../../src/cli/local-cluster.js';
import { decodeStripe, type Stripe } from '../../src/files/erasure-stripe.js';
import { chunkPath } from './files-support.js';

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

/** Stripe descriptors among a disk node's chunks, read from its data dir. */
export async function stripesOn(cluster: LocalCluster, i: number, ids: Iterable<string>): Promise<Map<string, Stripe>> {
  const out = new Map<string, Stripe>();
  for (const id of ids) {
    const bytes = await readFile(chunkPath(cluster.node(i).dataDir, id)).catch(() => undefined);
    if (!bytes || bytes.length > 2048) continue;
    try {
      out.set(id, decodeStripe(bytes));
    } catch {
      /* an ordinary chunk that happens to be small */
    }
  }
  return out;
}

/** Live holders of each shard of a stripe, and how many distinct nodes hold one. */
export function stripeSpread(st: Stripe, h: Map<number, Set<string>>): { perShard: number[][]; distinctNodes: number } {
  const perShard = st.s.map((s) => [...h].filter(([, ids]) => ids.has(s.toString('hex'))).map(([i]) => i));
  return { perShard, distinctNodes: new Set(perShard.flat()).size };
}
