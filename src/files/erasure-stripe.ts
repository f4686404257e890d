/**
 * Erasure-coded chunks. A chunk's ciphertext C becomes k data and m parity shards, each stored as
 * a chunk of its own (id = SHA-256 of the shard). A small descriptor, itself a content-addressed
 * chunk, names C's id and size, k, m and every shard id; the manifest lists the descriptor's id.
 * The descriptor sits beside each shard on the stripe's k+m nodes (the first k+m of its
 * placement), so any holder can find and rebuild the siblings of what it holds.
 *
 * Reads take k shards from the holders expected to answer first (data shards while nothing is
 * measured, so a healthy read only joins them); parity is fetched and decoded for shards that
 * are missing, fail verification, sit on a slow holder, or whose holder stays silent.
 */
import { Encoder } from 'cbor-x';
import { z } from 'zod';
import { TesseraError, corrupt, unavailable } from '../errors.js';
import type { Logger } from '../log.js';
import { CHUNK_ID_BYTES, MAX_CHUNK_BYTES } from '../limits.js';
import { chunkIdOf, MAX_EC_DATA_SHARDS, MAX_EC_PARITY_SHARDS, MAX_EC_SHARDS, decodeShards, rebuildShards, shardSizeFor } from '../content/index.js';
import type { WeightedNode } from '../cluster/index.js';
import { CHUNK_CALL_TIMEOUT_MS, CONTROL_CALL_TIMEOUT_MS, MAX_IDS_PER_REQUEST } from './limits.js';
import { MAX_STRIPE_DESCRIPTOR_BYTES, STRIPE_PROBE_EXTRA } from './repair-limits.js';
import { errorMessage } from './errors.js';
import type { Peers } from './peers.js';
import { FILE_METHODS, parseReply, replies } from './rpc.js';
import { gather, type Candidate } from './hedged-gather.js';

export const STRIPE_VERSION = 1;

export interface Stripe {
  /** Id of the ciphertext the shards rebuild. */
  readonly c: Buffer;
  /** Its length in bytes. */
  readonly size: number;
  readonly k: number;
  readonly m: number;
  /** k data shard ids, then m parity shard ids. */
  readonly s: Buffer[];
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const id32 = z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === CHUNK_ID_BYTES, 'expected a 32-byte id').transform((v) => Buffer.from(v));
const stripeSchema = z
  .object({
    v: z.literal(STRIPE_VERSION),
    c: id32,
    n: z.number().int().min(1).max(MAX_CHUNK_BYTES),
    k: z.number().int().min(1).max(MAX_EC_DATA_SHARDS),
    m: z.number().int().min(1).max(MAX_EC_PARITY_SHARDS),
    s: z.array(id32).max(MAX_EC_SHARDS),
  })
  .strict()
  .refine((o) => o.s.length === o.k + o.m, 'a stripe lists exactly k+m shard ids');

export function encodeStripe(st: Stripe): Buffer {
  return cbor.encode({ v: STRIPE_VERSION, c: st.c, n: st.size, k: st.k, m: st.m, s: st.s });
}

/** Decodes a descriptor read from a store or a peer; anything malformed is CORRUPT. */
export function decodeStripe(data: Uint8Array): Stripe {
  if (data.length > MAX_STRIPE_DESCRIPTOR_BYTES) throw corrupt(`stripe descriptor of ${data.length} bytes is over the ${MAX_STRIPE_DESCRIPTOR_BYTES}-byte limit`);
  let raw: unknown;
  try {
    raw = cbor.decode(data);
  } catch (e) {
    throw corrupt(`stripe descriptor is not valid CBOR: ${errorMessage(e)}`);
  }
  const p = stripeSchema.safeParse(raw);
  if (!p.success) throw corrupt(`stripe descriptor is malformed: ${p.error.issues[0]?.message ?? 'invalid'}`);
  return { c: p.data.c, size: p.data.n, k: p.data.k, m: p.data.m, s: p.data.s };
}

export interface ShardSource {
  readonly peers: Peers;
  readonly log: Logger;
  /** Nodes placement ranks over: live ones plus members dead for less than the repair grace. */
  view(): WeightedNode[];
}

/** Fetches one shard from one node and verifies it; undefined when the node lacks it or fails. */
async function shardFrom(src: ShardSource, node: string, id: Buffer, signal?: AbortSignal): Promise<Buffer | undefined> {
  if (node !== src.peers.selfId && src.peers.isHeldDown(node)) return undefined;
  try {
    const r = await src.peers.call(node, FILE_METHODS.chunkGet, { id }, undefined, { timeoutMs: CHUNK_CALL_TIMEOUT_MS, ...(signal ? { signal } : {}) });
    if (!chunkIdOf(r.payload).equals(id)) {
      src.log.warn({ shard: id.toString('hex'), holder: node }, 'a holder sent a shard that does not hash to its id');
      return undefined;
    }
    return r.payload;
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    return undefined;
  }
}

/** Which of the probed nodes hold each shard: one has-query per node. */
export async function locateShards(src: ShardSource, d: Buffer, st: Stripe, signal?: AbortSignal): Promise<Map<number, string[]>> {
  const live = new Set(src.peers.live().map((n) => n.nodeId));
  const probe = src.peers.rank(d, src.view()).slice(0, st.k + st.m + STRIPE_PROBE_EXTRA).filter((n) => live.has(n));
  // Far-away holders (a stripe rebalanced twice) are found by asking everyone once the near ones fall short.
  const where = new Map<number, string[]>();
  const ask = async (nodes: string[]) => {
    await Promise.all(
      nodes.map(async (n) => {
        try {
          const r = await src.peers.call(n, FILE_METHODS.chunkHas, { ids: st.s.slice(0, MAX_IDS_PER_REQUEST) }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS, ...(signal ? { signal } : {}) });
          parseReply(replies.has, r.body, n).have.forEach((h, j) => {
            if (h) where.set(j, [...(where.get(j) ?? []), n]);
          });
        } catch {
          /* unreachable: its shards do not count */
        }
      }),
    );
  };
  await ask(probe);
  if (where.size < st.k) await ask([...live].filter((n) => !probe.includes(n)));
  return where;
}

/**
 * Gathers at least k verified shards of a stripe: data shards from where placement put them
 * first, then anything located by asking. Returns shards by index (missing ones undefined).
 */
export async function gatherShards(src: ShardSource, d: Buffer, st: Stripe, o: { want?: number; signal?: AbortSignal; skip?: Set<string> } = {}): Promise<(Buffer | undefined)[]> {
  const n = st.k + st.m;
  const want = Math.min(n, o.want ?? st.k);
  const out: (Buffer | undefined)[] = new Array<Buffer | undefined>(n).fill(undefined);
  const count = () => out.filter((b) => b !== undefined).length;
  const live = new Set(src.peers.live().map((x) => x.nodeId));
  const homes = src.peers.rank(d, src.view()).slice(0, n);
  // The write placed shard j on the j-th node of the placement; after failures it may sit elsewhere.
  // Data shards come first, so with nothing measured a read only joins them; once the board knows
  // which homes are slow, the fastest k are asked (parity in place of a slow data shard), and a
  // silent one is hedged with another shard.
  const candidates: Candidate[] = [];
  homes.forEach((home, j) => {
    if (live.has(home) && !o.skip?.has(home) && (home === src.peers.selfId || !src.peers.isHeldDown(home))) candidates.push({ key: String(j), holder: home });
  });
  const { got } = await gather<Buffer>({
    need: want,
    candidates,
    board: src.peers.board,
    bytes: shardSizeFor(st.size, st.k),
    sizeOf: (b) => b.length,
    ...(o.signal ? { signal: o.signal } : {}),
    attempt: async (c, signal) => {
      const b = await shardFrom(src, c.holder, st.s[Number(c.key)]!, signal);
      if (b === undefined) throw unavailable(`node ${c.holder.slice(0, 12)} did not return shard ${c.key}`);
      return b;
    },
  });
  for (const [j, { value }] of got) out[Number(j)] = value;
  if (count() >= want) return out;
  const where = await locateShards(src, d, st, o.signal);
  const order = [...Array(n).keys()].filter((j) => out[j] === undefined);
  for (const j of order) {
    if (count() >= want) break;
    for (const node of where.get(j) ?? []) {
      if (o.skip?.has(node)) continue;
      const b = await shardFrom(src, node, st.s[j]!, o.signal);
      if (b !== undefined) {
        out[j] = b;
        break;
      }
    }
  }
  if (count() < Math.min(want, st.k)) {
    throw unavailable(`only ${count()} of the ${n} shards of a ${st.k}+${st.m} chunk could be read; ${st.k} are needed`);
  }
  return out;
}

/** The verified ciphertext of an erasure-coded chunk, from its descriptor. */
export async function readStriped(src: ShardSource, d: Buffer, st: Stripe, signal?: AbortSignal): Promise<Buffer> {
  const shards = await gatherShards(src, d, st, signal ? { signal } : {});
  const data = await decodeShards(shards, st, st.size);
  if (!chunkIdOf(data).equals(st.c)) throw corrupt(`shards of chunk ${st.c.toString('hex').slice(0, 16)} decode to the wrong bytes`);
  return data;
}

/** All k+m shards of a stripe, recomputing the ones that cannot be read (for repair). */
export async function rebuildStripe(src: ShardSource, d: Buffer, st: Stripe, have: (Buffer | undefined)[] = []): Promise<Buffer[]> {
  const present = have.filter((b) => b !== undefined).length;
  const shards = present >= st.k ? have : await gatherShards(src, d, st);
  for (let j = 0; j < st.k + st.m; j++) if (shards[j] === undefined && have[j] !== undefined) shards[j] = have[j];
  const all = await rebuildShards(shards, st);
  all.forEach((b, j) => {
    if (!chunkIdOf(b).equals(st.s[j]!)) throw new TesseraError('CORRUPT', `rebuilt shard ${j} of a stripe does not match its id`);
  });
  return all;
}
