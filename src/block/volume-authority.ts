/**
 * Who may change a volume. Volume records (layout, members, master) are replicated to every node
 * and merged last-writer-wins, so a record that would win must prove that a data-key holder made
 * it (an Ed25519 proof by the cluster's authority key, content/authority.ts), may not be dated
 * ahead of the receiver's clock, and may not jump its version further than a stated step. On a
 * member, extent writes are accepted only from the master the member's current record names:
 * a new master takes a volume over by publishing a record naming itself, and from the moment a
 * member holds it the previous master is fenced. Creating an extent needs a record that lists
 * this node, sent by its master or its writer; deleting one needs a record that no longer does.
 *
 * A storage-only node holds only the public half of the authority key: it checks all of this and
 * can make none of it. Refusals answer AUTH and are logged at most once per sender per interval.
 */
import { AuthoritySigner, AuthorityVerifier, MAX_PROOF_FUTURE_MS, proofProblem } from '../content/index.js';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { RefusalLog } from '../net/index.js';

/** Versions stay far below 2^53, so no record can be made that nothing later outranks. */
export const MAX_VOLUME_VERSION = 2 ** 32;
/**
 * How far a record from the network may move a volume's version past the one held (or past 0 for
 * a volume not yet known). Versions move by one per create, replace, removal or takeover.
 */
export const MAX_VOLUME_VERSION_STEP = 65_536;

/** The fields of a volume record that the authority proof covers. */
export interface AuthoredVolumeRecord {
  name: string;
  id: string;
  layout: string;
  size: number;
  memberSize: number;
  unitSize: number;
  members: string[];
  version: number;
  updatedAt: number;
  updatedBy: string;
  deleted: boolean;
  format?: number | undefined;
  /** The node that may write the volume's extents: its fenced master. */
  master?: string | undefined;
  /** A node being rebuilt as a replacement member: it may receive the master's writes before it is listed. */
  incoming?: string | undefined;
  proof?: Uint8Array | undefined;
}

/** The exact bytes the proof signs: every covered field in a fixed order, the proof itself left out. */
export function volumeRecordBytes(r: AuthoredVolumeRecord): Buffer {
  return Buffer.from(JSON.stringify([
    r.name, r.id, r.layout, r.size, r.memberSize, r.unitSize, r.members, r.version, r.updatedAt, r.updatedBy,
    r.deleted, r.format ?? null, r.master ?? null, r.incoming ?? null,
  ]), 'utf8');
}

export type ExtentOp = 'create' | 'write' | 'delete';

/** Splits "<volume>.<id>" (volume names hold no dot). */
export function volumeOfExtent(extent: string): { volume: string; id: string } {
  const dot = extent.indexOf('.');
  return dot < 0 ? { volume: extent, id: '' } : { volume: extent.slice(0, dot), id: extent.slice(dot + 1) };
}

function refused(what: string, why: string): TesseraError {
  return new TesseraError('AUTH', `refused ${what}: ${why}`);
}

export class VolumeAuthority {
  readonly #refusals: RefusalLog;
  readonly #signer: AuthoritySigner | undefined;
  readonly #verifier: AuthorityVerifier | undefined;
  /** Messages refused since start (for tests and metrics). */
  refused = 0;

  constructor(
    keys: { dataKey?: Uint8Array | undefined; authorityKey?: Uint8Array | undefined },
    private readonly selfId: string,
    log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.#signer = keys.dataKey !== undefined ? new AuthoritySigner(keys.dataKey) : undefined;
    this.#verifier = this.#signer ?? (keys.authorityKey !== undefined ? new AuthorityVerifier(keys.authorityKey) : undefined);
    this.#refusals = new RefusalLog(log);
  }

  get canSign(): boolean {
    return this.#signer !== undefined;
  }

  /** The record with its proof; only a node holding the data key can make one. */
  sign<R extends AuthoredVolumeRecord>(rec: R): R {
    if (this.#signer === undefined) {
      throw new TesseraError('AUTH', `volume '${rec.name}' cannot be changed from this node: it is storage-only (it joined without the data key); use the API of a full node`);
    }
    return { ...rec, proof: this.#signer.prove({ kind: 'volume', record: volumeRecordBytes(rec) }) };
  }

  /** Throws AUTH (and logs) unless a record from `from` may replace `held`. */
  checkRecord(rec: AuthoredVolumeRecord, held: AuthoredVolumeRecord | undefined, from: string): void {
    const base = held?.version ?? 0;
    let timeProblem: string | undefined;
    if (rec.updatedAt > this.now() + MAX_PROOF_FUTURE_MS) timeProblem = 'it is dated in the future';
    else if (rec.version > base + MAX_VOLUME_VERSION_STEP) timeProblem = `its version jumps from ${base} to ${rec.version}, beyond the step of ${MAX_VOLUME_VERSION_STEP}`;
    const why = proofProblem(this.#verifier, { kind: 'volume', record: volumeRecordBytes(rec) }, rec.proof, timeProblem);
    if (why !== undefined) this.#refuse('vol.put', `volume record '${rec.name}' v${rec.version}`, from, `${why}; only a node holding the data key may change a volume`);
  }

  /**
   * Throws AUTH (and logs) unless `from` may run `op` on `extent` here, given the record this node
   * holds for its volume.
   */
  checkExtent(op: ExtentOp, extent: string, rec: AuthoredVolumeRecord | undefined, from: string): void {
    const { id } = volumeOfExtent(extent);
    const current = rec !== undefined && !rec.deleted && rec.id === id;
    const listed = current && (rec.members.includes(this.selfId) || rec.incoming === this.selfId);
    let why: string | undefined;
    if (op === 'delete') {
      if (rec === undefined) why = 'this node holds no record of its volume';
      else if (listed) why = 'the volume\'s current record still places it on this node';
    } else if (!current) {
      why = 'this node holds no current record of its volume';
    } else if (!listed) {
      why = 'the volume\'s current record does not place it on this node';
    } else if (op === 'write' && from !== rec.master) {
      why = rec.master === undefined ? 'the volume has no master yet' : `only the volume's master (${rec.master.slice(0, 12)}) may write it`;
    } else if (op === 'create' && from !== rec.master && from !== rec.updatedBy) {
      why = 'only the volume\'s master or the node that made its record may create it';
    }
    if (why !== undefined) this.#refuse(`extent.${op}`, `extent.${op} of '${extent}'`, from, why);
  }

  #refuse(method: string, what: string, from: string, why: string): never {
    this.refused++;
    this.#refusals.refused(from, { method, reason: why }, 'refused a volume change from a member');
    throw refused(what, why);
  }
}
