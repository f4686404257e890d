/**
 * Bytes each peer has stored on this node that no committed file holds yet. Any member may store
 * chunks (that is the storage-only role), and until a put commits nothing tells its chunks from
 * junk; they are collected when the upload expires and its grace period ends. This ledger bounds
 * what one peer, and all peers together, can keep on the disk meanwhile: a chunk that would take
 * a peer past its share is refused with NO_SPACE, which a writer treats like a full node.
 *
 * A charge is released when its upload commits, and kept until the grace period has passed when
 * the upload is aborted or expires (the bytes stay on disk until then). A chunk sent without an
 * upload and owned by no file is charged to its peer for one grace period. Pure: no I/O.
 */
import { TesseraError } from '../errors.js';

/** One peer may keep at most this share of the node's capacity uncommitted. */
export const UNCOMMITTED_SHARE_PER_PEER = 1 / 8;
/** All peers together may keep at most this share uncommitted; the rest waits for commits. */
export const UNCOMMITTED_SHARE_ALL_PEERS = 1 / 2;
/** Uncommitted uploads (and grace-period entries) one peer may hold charged here at once. */
export const MAX_UNCOMMITTED_UPLOADS_PER_PEER = 4096;

interface Entry {
  peer: string;
  bytes: number;
  /** When the charge lapses by itself: its bytes are gone, or its upload has long expired. */
  expiresAt: number;
}

export interface LedgerLimits {
  perPeer: number;
  allPeers: number;
}

export class UncommittedLedger {
  readonly #entries = new Map<string, Entry>();
  readonly #perPeer = new Map<string, { bytes: number; entries: number }>();
  #total = 0;
  /** Chunks refused since start (for metrics and tests). */
  refused = 0;

  /** `limits` is read per charge: the node's capacity may change (quota, disk). */
  constructor(private readonly limits: () => LedgerLimits) {}

  /** Bytes charged to one peer now. */
  bytes(peer: string): number {
    return this.#perPeer.get(peer)?.bytes ?? 0;
  }

  get total(): number {
    return this.#total;
  }

  /**
   * Charges `bytes` to `peer` under `key` (an upload id, or a grace-period bucket), lapsing at
   * `expiresAt` at the latest; throws NO_SPACE when the peer or all peers would pass their share.
   */
  charge(peer: string, key: string, bytes: number, expiresAt: number): void {
    const lim = this.limits();
    const p = this.#perPeer.get(peer) ?? { bytes: 0, entries: 0 };
    const e = this.#entries.get(key);
    if (e !== undefined && e.peer !== peer) throw new TesseraError('CONFLICT', `upload ${key.slice(0, 32)} belongs to another node`);
    if (e === undefined && p.entries >= MAX_UNCOMMITTED_UPLOADS_PER_PEER) {
      this.refused++;
      throw new TesseraError('NO_SPACE', `node ${peer.slice(0, 12)} already has ${MAX_UNCOMMITTED_UPLOADS_PER_PEER} uncommitted uploads on this node; commit or abort some first`);
    }
    if (p.bytes + bytes > lim.perPeer || this.#total + bytes > lim.allPeers) {
      this.refused++;
      const which = p.bytes + bytes > lim.perPeer ? `node ${peer.slice(0, 12)} already keeps ${p.bytes} bytes here uncommitted, its share is ${Math.floor(lim.perPeer)}` : `members keep ${this.#total} bytes here uncommitted, the most all of them may is ${Math.floor(lim.allPeers)}`;
      throw new TesseraError('NO_SPACE', `refused a chunk no committed file holds yet: ${which}; it is released as puts commit`);
    }
    if (e === undefined) {
      this.#entries.set(key, { peer, bytes, expiresAt });
      p.entries++;
    } else {
      e.bytes += bytes;
      e.expiresAt = Math.max(e.expiresAt, expiresAt);
    }
    p.bytes += bytes;
    this.#perPeer.set(peer, p);
    this.#total += bytes;
  }

  /** Gives back bytes charged but never stored (a copy that was already here, a failed write). */
  refund(key: string, bytes: number): void {
    const e = this.#entries.get(key);
    if (e === undefined) return;
    const n = Math.min(bytes, e.bytes);
    e.bytes -= n;
    this.#move(e.peer, -n, 0);
  }

  /** The upload committed: its chunks belong to a file now. */
  release(key: string): void {
    const e = this.#entries.get(key);
    if (e === undefined) return;
    this.#entries.delete(key);
    this.#move(e.peer, -e.bytes, -1);
  }

  /** The upload was dropped: its bytes stay charged until `until`, when the grace sweep deletes them. */
  retire(key: string, until: number): void {
    const e = this.#entries.get(key);
    if (e !== undefined) e.expiresAt = until;
  }

  /** Releases every charge that lapsed by `now`. */
  expire(now: number): void {
    for (const [key, e] of this.#entries) if (e.expiresAt <= now) this.release(key);
  }

  #move(peer: string, bytes: number, entries: number): void {
    const p = this.#perPeer.get(peer);
    if (p === undefined) return;
    p.bytes += bytes;
    p.entries += entries;
    this.#total += bytes;
    if (p.entries <= 0) this.#perPeer.delete(peer);
  }
}
