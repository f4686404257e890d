/**
 * Commits and references stored before commits carried proofs hold none, so repair could not
 * hand them on and no holder would accept them. Both kinds of node bring them up to date after
 * they start, in the background; nothing is deleted meanwhile (an unproven reference still holds
 * its chunk here, it only cannot travel).
 *
 * A full node (it holds the data key) proves what it holds itself: these records were accepted
 * under the rules of their day, and it vouches only for what it already keeps, never for what it
 * is sent. A storage-only node cannot sign; it asks the live members for the proofs they hold of
 * the same references (`file.proofs`) and keeps those that check out. A reference no member holds
 * a proof of (a chunk held by storage-only nodes alone) stays unproven here: kept and served,
 * but neither pushed nor dropped by repair. Never accepting unproven records from the network is
 * what closes the gap; these are only the node's own.
 */
import type { AuthoritySigner } from '../content/index.js';
import type { Logger } from '../log.js';
import type { Metadata } from '../store/index.js';
import type { RefStore, UnprovenRef } from './refs.js';
import { REF_TXN_BATCH } from './limits.js';
import { CONTROL_CALL_TIMEOUT_MS } from './limits.js';
import { FILE_METHODS, MAX_PROOF_QUERY, parseReply, replies } from './rpc.js';
import type { Peers } from './peers.js';
import type { AuthorityGate } from './authority-gate.js';

const STATE_TABLE = 'legacy-commits';
const DONE_KEY = 'proven';
/** A storage-only node asks again after this, doubling up to the maximum, until every reference is proven. */
export const LEGACY_RETRY_MS = 5_000;
export const LEGACY_RETRY_MAX_MS = 600_000;

export interface LegacyCommitsOptions {
  refs: RefStore;
  meta: Metadata;
  log: Logger;
  stopped: () => boolean;
  /** Full node: signs. */
  signer?: AuthoritySigner | undefined;
  /** Storage-only node: asks the live members, and checks each answer with the gate. */
  peers: Peers;
  gate: AuthorityGate;
}

/** One pass over the unproven references; returns how many were proven and how many are left. */
export async function proveLegacyCommits(o: LegacyCommitsOptions): Promise<{ proven: number; left: number }> {
  o.meta.table(STATE_TABLE);
  const result = { proven: 0, left: 0 };
  if (o.meta.get<boolean>(STATE_TABLE, DONE_KEY) === true) return result;
  let after: UnprovenRef | undefined;
  for (;;) {
    if (o.stopped()) return { ...result, left: result.left + 1 };
    const page = o.refs.unproven(after, o.signer ? REF_TXN_BATCH : MAX_PROOF_QUERY);
    if (page.length === 0) break;
    after = page[page.length - 1];
    const proven = o.signer ? sign(o.signer, page) : await adopt(o, page);
    for (const [upload, pins] of group(proven)) await o.refs.addProofs(upload, pins.commit, pins.pins);
    result.proven += proven.length;
    result.left += page.length - proven.length;
    // Other work runs between pages.
    await new Promise((r) => setImmediate(r));
  }
  if (result.left === 0) await o.meta.put(STATE_TABLE, DONE_KEY, true);
  if (result.proven > 0 || result.left > 0) o.log.info(result, 'references stored before commits carried proofs: proven, and left unproven');
  return result;
}

/** Runs passes until nothing is left unproven (a storage-only node may need members to be up first). */
export async function keepProvingLegacyCommits(o: LegacyCommitsOptions): Promise<void> {
  let wait = LEGACY_RETRY_MS;
  while (!o.stopped()) {
    const { left } = await proveLegacyCommits(o);
    if (left === 0 || o.stopped()) return;
    // Slept in slices, so a stop is noticed within a quarter second.
    for (const until = Date.now() + wait; Date.now() < until && !o.stopped(); ) await new Promise((r) => setTimeout(r, 250));
    wait = Math.min(LEGACY_RETRY_MAX_MS, wait * 2);
  }
}

interface Proven {
  upload: string;
  hex: string;
  pin: Buffer;
  commit?: Buffer | undefined;
}

function sign(signer: AuthoritySigner, page: readonly UnprovenRef[]): Proven[] {
  return page.map((r) => ({
    upload: r.upload,
    hex: r.hex,
    pin: signer.prove({ kind: 'pin', upload: r.upload, chunk: Buffer.from(r.hex, 'hex') }),
    commit: r.commit ? signer.prove({ kind: 'commit', upload: r.upload, root: r.root, at: r.at }) : undefined,
  }));
}

async function adopt(o: LegacyCommitsOptions, page: readonly UnprovenRef[]): Promise<Proven[]> {
  const wanted = new Map(page.map((r) => [`${r.upload}/${r.hex}`, r]));
  const out = new Map<string, Proven>();
  const body = { refs: page.map((r) => ({ upload: r.upload, id: Buffer.from(r.hex, 'hex') })) };
  const gate = o.gate;
  for (const n of o.peers.live()) {
    if (n.nodeId === o.peers.selfId || out.size === wanted.size) continue;
    const owners = await o.peers
      .call(n.nodeId, FILE_METHODS.fileProofs, body, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS })
      .then((r) => parseReply(replies.proofs, r.body, n.nodeId).owners)
      // An older or unreachable member: the next pass asks again.
      .catch(() => []);
    for (const a of owners) {
      const key = `${a.upload}/${a.id.toString('hex')}`;
      const r = wanted.get(key);
      // Only an answer about the commit held here, with both of the writer's proofs.
      if (!r || out.has(key) || a.root !== r.root || a.at !== r.at) continue;
      if (!gate.allows(() => gate.commit(FILE_METHODS.fileProofs, a, n.nodeId)) || !gate.allows(() => gate.pins(FILE_METHODS.fileProofs, a.upload, [a.id], [a.pin], n.nodeId))) continue;
      out.set(key, { upload: r.upload, hex: r.hex, pin: a.pin!, commit: a.proof });
    }
  }
  return [...out.values()];
}

function group(proven: readonly Proven[]): Map<string, { commit: Buffer | undefined; pins: { hex: string; pin: Buffer }[] }> {
  const by = new Map<string, { commit: Buffer | undefined; pins: { hex: string; pin: Buffer }[] }>();
  for (const p of proven) {
    let g = by.get(p.upload);
    if (!g) by.set(p.upload, (g = { commit: undefined, pins: [] }));
    g.commit ??= p.commit;
    g.pins.push({ hex: p.hex, pin: p.pin });
  }
  return by;
}
