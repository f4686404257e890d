/**
 * The check every destructive files message passes before anything is applied or merged:
 * tombstones (file.rm and anti-entropy), drain orders, and the messages that make chunks stay
 * (references with their pins, commits, the owners a repaired copy arrives with, aborts of
 * committed uploads). A message without a valid authority proof, or dated beyond the clock bound,
 * is refused with AUTH and logged, at most one line per sender per interval.
 */
import { AuthorityVerifier, MAX_DRAIN_ORDER_AGE_MS, MAX_PROOF_FUTURE_MS, type Statement, unproven } from '../content/index.js';
import type { Logger } from '../log.js';
import { RefusalLog } from '../net/index.js';

export interface ProvenTombstone {
  root: string;
  at: number;
  proof?: Uint8Array | undefined;
}
export interface ProvenDrain {
  on: boolean;
  at?: number | undefined;
  proof?: Uint8Array | undefined;
}

export interface ProvenCommit {
  upload: string;
  root: string;
  at: number;
  proof?: Uint8Array | undefined;
}

/**
 * Pins a gate remembers as verified. A writer's chunk arrives with the same pin twice, first in
 * its batched claim and then with its bytes; an Ed25519 verification costs about 0.1 ms, as
 * much as hashing a sixth of a 1 MiB chunk, so the second check is answered from here. Enough for
 * the chunks of several puts in flight; the oldest entry goes first.
 */
export const VERIFIED_PINS_KEPT = 4096;

export class AuthorityGate {
  readonly #refusals: RefusalLog;
  /** `upload:chunk:proof` of pins that verified; a signature check is deterministic, so a hit needs no new one. */
  readonly #verifiedPins = new Set<string>();
  /** Messages refused since start (for tests and metrics). */
  refused = 0;

  constructor(
    private readonly verifier: AuthorityVerifier | undefined,
    log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.#refusals = new RefusalLog(log);
  }

  tombstone(t: ProvenTombstone, from: string): void {
    this.#check('file.rm', `removal of file ${t.root.slice(0, 16)}`, from, { kind: 'fileRm', root: t.root, at: t.at }, t.proof, t.at > this.now() + MAX_PROOF_FUTURE_MS ? 'it is dated in the future' : undefined);
  }

  /** A drain order is bound to the node it drains, and must be fresh. */
  drain(d: ProvenDrain, selfId: string, from: string): void {
    const at = d.at ?? -1;
    const t = this.now();
    const stale = at > t + MAX_PROOF_FUTURE_MS ? 'it is dated in the future' : at < t - MAX_DRAIN_ORDER_AGE_MS ? 'it is stale or undated' : undefined;
    this.#check('heal.drain', `order to ${d.on ? 'drain' : 'stop draining'} this node`, from, { kind: 'drain', target: selfId, on: d.on, at }, d.proof, stale);
  }

  /** Each chunk an upload is to hold needs the writer's pin for it. */
  pins(method: string, upload: string, ids: readonly Buffer[], pins: readonly (Uint8Array | undefined)[] | undefined, from: string): void {
    if (pins !== undefined && pins.length !== ids.length) this.#refuse(method, `references of upload ${upload}`, from, `it carries ${pins.length} pins for ${ids.length} chunks`);
    ids.forEach((id, i) => {
      const proof = pins?.[i];
      const seen = proof !== undefined && this.verifier !== undefined ? `${upload}:${id.toString('hex')}:${Buffer.from(proof.buffer, proof.byteOffset, proof.byteLength).toString('hex')}` : undefined;
      if (seen !== undefined && this.#verifiedPins.has(seen)) return;
      this.#check(method, `a reference of upload ${upload} to chunk ${id.toString('hex').slice(0, 16)}`, from, { kind: 'pin', upload, chunk: id }, proof, undefined);
      if (seen === undefined) return;
      if (this.#verifiedPins.size >= VERIFIED_PINS_KEPT) this.#verifiedPins.delete(this.#verifiedPins.values().next().value!);
      this.#verifiedPins.add(seen);
    });
  }

  /** A commit makes an upload's chunks stay until a proven removal; dated ahead, it would outlive removals. */
  commit(method: string, c: ProvenCommit, from: string): void {
    this.#check(method, `commit of upload ${c.upload} as file ${c.root.slice(0, 16)}`, from, { kind: 'commit', upload: c.upload, root: c.root, at: c.at }, c.proof, c.at > this.now() + MAX_PROOF_FUTURE_MS ? 'it is dated in the future' : undefined);
  }

  /** Only the writer may give up an upload that committed (its commit missed the quorum). */
  abort(upload: string, proof: Uint8Array | undefined, from: string): void {
    this.#check('file.abort', `abort of committed upload ${upload}`, from, { kind: 'abort', upload }, proof, undefined);
  }

  /** True when `check` passes; a refusal is counted and logged by it, not thrown. */
  allows(check: () => void): boolean {
    try {
      check();
      return true;
    } catch {
      return false;
    }
  }

  #check(method: string, what: string, from: string, s: Statement, proof: Uint8Array | undefined, timeProblem: string | undefined): void {
    let why = timeProblem;
    if (why === undefined) {
      if (this.verifier === undefined) why = 'this node holds no authority key to check it with (re-join it with a current token)';
      else if (proof === undefined) why = 'it carries no proof';
      else if (!this.verifier.valid(s, proof)) why = 'its proof does not match';
    }
    if (why === undefined) return;
    this.#refuse(method, what, from, why);
  }

  #refuse(method: string, what: string, from: string, why: string): never {
    this.refused++;
    this.#refusals.refused(from, { method, reason: why }, 'refused a destructive message from a member');
    throw unproven(what, why);
  }
}
