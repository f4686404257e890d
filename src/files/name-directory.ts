/**
 * Names across the cluster: a write goes to every live node and succeeds on a quorum; a read
 * asks every live node, keeps the newest record (last writer wins by hybrid clock) and pushes it
 * back to the nodes that had an older one or none (read repair).
 *
 * Only records that open under this cluster's keys take part in the merge: a record a member
 * made up, however new its timestamp, cannot shadow the real one.
 */
import { type AuthoritySigner, type HybridClock, nameLookupKey, openNameRecord, sealNameRecord, type NameKeys, type NameRecord, type SealedNameRecord, newerNameRecord } from '../content/index.js';
import { unavailable } from '../errors.js';
import { reachQuorum } from '../cluster/index.js';
import type { Logger } from '../log.js';
import { CONTROL_CALL_TIMEOUT_MS, MAX_LIST_PAGE_RECORDS, MAX_LIST_PAGES } from './limits.js';
import { errorMessage } from './errors.js';
import type { Peers } from './peers.js';
import { M, nameGetReply, nameListReply, parseReply } from './rpc.js';

export class NameDirectory {
  constructor(
    private readonly peers: Peers,
    private readonly keys: NameKeys,
    private readonly signer: AuthoritySigner,
    private readonly clock: HybridClock,
    private readonly log: Logger,
  ) {}

  /** Seals and replicates a record; durable on at least `quorum` nodes (or every live one, if fewer). */
  async write(record: NameRecord, quorum: number): Promise<void> {
    const sealed = sealNameRecord(this.keys, record, this.clock.tick());
    const nodes = this.peers.live().map((n) => n.nodeId);
    await reachQuorum({
      ranked: nodes,
      quorum: Math.max(1, Math.min(quorum, nodes.length)),
      attempt: (n) => this.push(n, sealed),
      shortfall: ({ done, failed }) =>
        unavailable(`the name record reached only ${done.length} of ${nodes.length} live node(s), fewer than the quorum ${quorum}: ${failed.map((f) => errorMessage(f.error)).join('; ')}`),
    });
  }

  /** The current record for a name (deleted ones included), or undefined if no live node knows it. */
  async lookup(name: string): Promise<NameRecord | undefined> {
    const key = nameLookupKey(this.keys.nameKey, name);
    const nodes = this.peers.live().map((n) => n.nodeId);
    const answers = await Promise.all(
      nodes.map(async (n) => {
        try {
          const r = await this.peers.call(n, M.nameGet, { key }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
          return { node: n, rec: parseReply(nameGetReply, r.body, n).record as SealedNameRecord | null };
        } catch (err) {
          this.log.debug({ node: n, err: errorMessage(err) }, 'name lookup on a node failed');
          return { node: n, rec: undefined };
        }
      }),
    );
    const answered = answers.filter((a) => a.rec !== undefined);
    if (answered.length === 0) throw unavailable(`no live node answered a name lookup (${nodes.length} asked)`);
    let best: { sealed: SealedNameRecord; opened: NameRecord } | undefined;
    for (const a of answered) {
      const opened = a.rec ? this.#open(a.rec) : undefined;
      if (a.rec && opened && (best === undefined || newerNameRecord(best.sealed, a.rec) === a.rec)) best = { sealed: a.rec, opened };
    }
    if (best === undefined) return undefined;
    const winner = best.sealed;
    for (const a of answered) if (!a.rec || !a.rec.box.equals(winner.box)) void this.repair(a.node, winner);
    return best.opened;
  }

  /** Every name any live node knows, merged; deleted names included (callers filter). */
  async list(): Promise<NameRecord[]> {
    const nodes = this.peers.live().map((n) => n.nodeId);
    const perNode = new Map<string, Map<string, SealedNameRecord>>();
    await Promise.all(
      nodes.map(async (n) => {
        try {
          perNode.set(n, await this.listNode(n));
        } catch (err) {
          this.log.debug({ node: n, err: errorMessage(err) }, 'name listing on a node failed');
        }
      }),
    );
    if (perNode.size === 0) throw unavailable(`no live node answered a name listing (${nodes.length} asked)`);
    const merged = new Map<string, { sealed: SealedNameRecord; opened: NameRecord }>();
    // Replicas mostly agree, so each distinct box is opened once.
    const openedBoxes = new Map<string, NameRecord | undefined>();
    for (const recs of perNode.values()) {
      for (const [k, rec] of recs) {
        const boxHex = rec.box.toString('hex');
        if (!openedBoxes.has(boxHex)) openedBoxes.set(boxHex, this.#open(rec));
        const opened = openedBoxes.get(boxHex);
        if (opened === undefined) continue;
        const cur = merged.get(k);
        if (cur === undefined || newerNameRecord(cur.sealed, rec) === rec) merged.set(k, { sealed: rec, opened });
      }
    }
    for (const [node, recs] of perNode) {
      for (const [k, rec] of merged) {
        const theirs = recs.get(k);
        if (theirs === undefined || !theirs.box.equals(rec.sealed.box)) void this.repair(node, rec.sealed);
      }
    }
    return [...merged.values()].map((m) => m.opened);
  }

  async listNode(node: string): Promise<Map<string, SealedNameRecord>> {
    const out = new Map<string, SealedNameRecord>();
    let after: Buffer | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const r = await this.peers.call(node, M.nameList, { ...(after ? { after } : {}), limit: MAX_LIST_PAGE_RECORDS }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
      const { records, more } = parseReply(nameListReply, r.body, node);
      for (const rec of records) out.set(rec.key.toString('hex'), rec);
      const last = records[records.length - 1];
      if (!more || last === undefined) break;
      after = last.key;
    }
    return out;
  }

  /**
   * Pushes a record that opened under this cluster's keys (so a data-key holder sealed it) with
   * its proof. Ed25519 proofs are deterministic, so proving it again gives the writer's proof, and
   * records written before proofs existed gain one on their first read repair.
   */
  private async push(node: string, rec: SealedNameRecord): Promise<void> {
    const proof = this.signer.prove({ kind: 'name', key: rec.key, hlc: rec.hlc, box: rec.box });
    await this.peers.call(node, M.namePut, { key: rec.key, hlc: rec.hlc, box: rec.box, proof }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
  }

  /** The record's contents, or undefined when it does not open under this cluster's keys (forged or damaged). */
  #open(rec: SealedNameRecord): NameRecord | undefined {
    try {
      return openNameRecord(this.keys, rec);
    } catch (err) {
      this.log.debug({ key: rec.key.toString('hex').slice(0, 16), err: errorMessage(err) }, 'ignoring a name record that does not open with this cluster\'s keys');
      return undefined;
    }
  }

  private async repair(node: string, rec: SealedNameRecord): Promise<void> {
    await this.push(node, rec).catch((err: unknown) => this.log.debug({ node, err: errorMessage(err) }, 'name read repair failed'));
  }
}
