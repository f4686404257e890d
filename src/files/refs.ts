/**
 * Reference bookkeeping in the node's LMDB metadata: which uploads (puts) own which local
 * chunks, which uploads became which files, which files were removed, and which chunks have
 * lost their last reference and wait out the grace period.
 *
 * A put owns references under a random upload id from its first chunk, because the file's id
 * (the manifest root) is only known once every chunk is stored. The commit binds upload to
 * root; a tombstone for the root then finds every upload of that file. Keys are strings so
 * prefix ranges select one chunk's owners or one upload's chunks.
 *
 * Writes that belong together are issued in one event-loop turn, which lmdb commits as one
 * transaction. Explicit (synchronous) transactions are avoided on this hot path: they wait for
 * the writer thread's commit on the main thread and stalled the event loop for hundreds of ms.
 */
import { conflict } from './errors.js';
import type { Metadata } from '../store/index.js';
import { REF_TXN_BATCH } from './limits.js';

type UploadRecord = { s: 'p'; t: number } | { s: 'c'; root: string; at: number } | { s: 'a'; t: number };

/** A reference of a committed upload, stored before commits carried proofs. */
export interface UnprovenRef {
  upload: string;
  hex: string;
  root: string;
  at: number;
  /** The upload's commit holds no proof either. */
  commit: boolean;
}

/** A committed upload holding a chunk, with the proofs repair hands on (absent for legacy records). */
export interface ProvenOwner {
  upload: string;
  root: string;
  at: number;
  /** The writer's proof of the commit. */
  proof?: Buffer;
  /** The writer's proof that the upload holds this chunk. */
  pin?: Buffer;
}

/**
 * A pending upload's activity time is written again only when it is this much older than the
 * reference being added: it decides when an idle put is presumed dead (minutes: the pending-upload
 * TTL), so a second of lag is noise, while rewriting it with every chunk was one table write in three
 * on every holder of a put.
 */
export const UPLOAD_TOUCH_MS = 1000;

const T = {
  refs: 'refs', // `${chunk}/${upload}` → the writer's pin proof (1 in records older than proofs)
  owned: 'owned', // `${upload}/${chunk}` → 1
  uploads: 'uploads', // upload → UploadRecord
  commitProofs: 'commit-proofs', // committed upload → the writer's proof of its commit
  fileUploads: 'file-uploads', // `${root}/${upload}` → commit time
  tombstones: 'tombstones', // root → removal time
  tombstoneProofs: 'tombstone-proofs', // root → authority proof of the removal time held in `tombstones`
  gc: 'gc', // chunk → time it may be deleted
} as const;

export interface Tombstone {
  root: string;
  at: number;
  /** Signed by a holder of the data key (content/authority.ts); passed on so other nodes can check it. */
  proof?: Uint8Array | undefined;
}

export class RefStore {
  constructor(private readonly meta: Metadata) {
    for (const t of Object.values(T)) meta.table(t);
  }

  /**
   * Records that `upload` owns these chunks; they are no longer candidates for deletion. `pins[i]`
   * is the writer's proof for `hexes[i]`, kept to be handed on by repair.
   */
  async addRefs(upload: string, hexes: readonly string[], now: number, pins?: readonly (Uint8Array | undefined)[]): Promise<void> {
    if (hexes.length === 0) return;
    const rec = this.upload(upload);
    if (rec?.s === 'a') throw conflict(`upload ${upload} was aborted; start the put again`);
    const writes: Promise<unknown>[] = [];
    if (rec === undefined || (rec.s === 'p' && now - rec.t >= UPLOAD_TOUCH_MS)) writes.push(this.meta.put(T.uploads, upload, { s: 'p', t: now }));
    for (const [i, hex] of hexes.entries()) {
      const pin = pins?.[i];
      const key = `${hex}/${upload}`;
      // A reference without a proof never replaces one with it.
      if (pin !== undefined || !this.meta.has(T.refs, key)) writes.push(this.meta.put(T.refs, key, pin !== undefined ? Buffer.from(pin) : 1));
      writes.push(this.meta.put(T.owned, `${upload}/${hex}`, 1));
      if (this.meta.has(T.gc, hex)) writes.push(this.meta.remove(T.gc, hex));
    }
    await Promise.all(writes);
  }

  hasRefs(hex: string): boolean {
    for (const _ of this.meta.range(T.refs, { prefix: `${hex}/`, limit: 1 })) return true;
    return false;
  }

  /** Owners of a chunk (for stat and tests). */
  owners(hex: string): string[] {
    return [...this.meta.range(T.refs, { prefix: `${hex}/` })].map((e) => String(e.key).slice(hex.length + 1));
  }

  upload(upload: string): UploadRecord | undefined {
    return this.meta.get<UploadRecord>(T.uploads, upload);
  }

  /** Binds an upload to the file it produced, keeping the writer's proof of it to hand on. */
  async commit(upload: string, root: string, at: number, graceMs: number, now: number, proof?: Uint8Array): Promise<void> {
    const rec = this.upload(upload);
    if (rec?.s === 'a') throw conflict(`upload ${upload} was aborted before its commit`);
    const writes: Promise<unknown>[] = [this.meta.put(T.uploads, upload, { s: 'c', root, at }), this.meta.put(T.fileUploads, `${root}/${upload}`, at)];
    if (proof !== undefined) writes.push(this.meta.put(T.commitProofs, upload, Buffer.from(proof)));
    await Promise.all(writes);
    // A removal this node already knows about that happened after the commit wins.
    const removed = this.meta.get<number>(T.tombstones, root);
    if (removed !== undefined && removed >= at) await this.dropUpload(upload, graceMs, now);
  }

  /** Drops every reference an upload holds; chunks left without any wait `graceMs` before deletion. */
  async dropUpload(upload: string, graceMs: number, now: number): Promise<number> {
    let dropped = 0;
    const rec = this.upload(upload);
    for (;;) {
      const batch = [...this.meta.range(T.owned, { prefix: `${upload}/`, limit: REF_TXN_BATCH })].map((e) => String(e.key).slice(upload.length + 1));
      const writes: Promise<unknown>[] = [];
      for (const hex of batch) writes.push(this.meta.remove(T.owned, `${upload}/${hex}`), this.meta.remove(T.refs, `${hex}/${upload}`));
      if (batch.length < REF_TXN_BATCH) {
        writes.push(this.meta.put(T.uploads, upload, { s: 'a', t: now }));
        if (rec?.s === 'c') writes.push(this.meta.remove(T.fileUploads, `${rec.root}/${upload}`), this.meta.remove(T.commitProofs, upload));
      }
      await Promise.all(writes);
      const orphans = batch.filter((hex) => !this.hasRefs(hex));
      await Promise.all(orphans.map((hex) => this.meta.put(T.gc, hex, now + graceMs)));
      dropped += batch.length;
      if (batch.length < REF_TXN_BATCH) return dropped;
    }
  }

  /** Records a removal and drops the references of every upload of that file committed before it. */
  async tombstone(root: string, at: number, graceMs: number, now: number, proof?: Uint8Array): Promise<boolean> {
    const prev = this.meta.get<number>(T.tombstones, root);
    const isNew = prev === undefined || prev < at;
    if (isNew) await Promise.all([this.meta.put(T.tombstones, root, at), proof ? this.meta.put(T.tombstoneProofs, root, proof) : this.meta.remove(T.tombstoneProofs, root)]);
    const effective = Math.max(prev ?? 0, at);
    const uploads = [...this.meta.range<number>(T.fileUploads, { prefix: `${root}/` })];
    for (const { key, value } of uploads) {
      if (value <= effective) await this.dropUpload(String(key).slice(root.length + 1), graceMs, now);
    }
    return isNew;
  }

  tombstoneOf(root: string): number | undefined {
    return this.meta.get<number>(T.tombstones, root);
  }

  /** True when a commit of this file newer than its tombstone exists here (it was put again). */
  liveCommitAfter(root: string, at: number): boolean {
    for (const { value } of this.meta.range<number>(T.fileUploads, { prefix: `${root}/` })) if (value > at) return true;
    return false;
  }

  listTombstones(after: string | undefined, limit: number): { items: Tombstone[]; more: boolean } {
    const items: Tombstone[] = [];
    let more = false;
    for (const { key, value } of this.meta.range<number>(T.tombstones, after !== undefined ? { start: after } : {})) {
      if (key === after) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      const proof = this.meta.get<Uint8Array>(T.tombstoneProofs, String(key));
      items.push({ root: String(key), at: value, ...(proof ? { proof: Buffer.from(proof) } : {}) });
    }
    return { items, more };
  }

  /** Chunks whose grace period is over (they may have been referenced again since: callers re-check). */
  dueForDeletion(now: number, limit: number): string[] {
    const out: string[] = [];
    for (const { key, value } of this.meta.range<number>(T.gc)) {
      if (value <= now) out.push(String(key));
      if (out.length >= limit) break;
    }
    return out;
  }

  async forgetDue(hex: string): Promise<void> {
    await this.meta.remove(T.gc, hex);
  }

  /** Queues a chunk nobody references (found by a scan, or restored by a repair) for deletion. */
  async scheduleIfOrphan(hex: string, graceMs: number, now: number): Promise<void> {
    if (!this.hasRefs(hex) && this.meta.get(T.gc, hex) === undefined) await this.meta.put(T.gc, hex, now + graceMs);
  }

  /** Uploads still pending whose last chunk arrived before `olderThan`, and aborted markers to forget. */
  staleUploads(olderThan: number, limit: number): { pending: string[]; aborted: string[] } {
    const pending: string[] = [];
    const aborted: string[] = [];
    for (const { key, value } of this.meta.range<UploadRecord>(T.uploads)) {
      if (value.s === 'p' && value.t < olderThan) pending.push(String(key));
      if (value.s === 'a' && value.t < olderThan) aborted.push(String(key));
      if (pending.length + aborted.length >= limit) break;
    }
    return { pending, aborted };
  }

  async forgetUpload(upload: string): Promise<void> {
    await this.meta.remove(T.uploads, upload);
  }

  /** The commits of these uploads held here, each with its proof when one is held. */
  committed(uploads: readonly string[]): Omit<ProvenOwner, 'pin'>[] {
    const out: Omit<ProvenOwner, 'pin'>[] = [];
    for (const u of uploads) {
      const rec = this.upload(u);
      if (rec?.s !== 'c') continue;
      const proof = this.meta.get<Uint8Array>(T.commitProofs, u);
      out.push({ upload: u, root: rec.root, at: rec.at, ...(proof ? { proof: Buffer.from(proof) } : {}) });
    }
    return out;
  }

  /** Committed uploads holding a chunk, at most `limit`, with the proofs to hand on with a copy of it. */
  committedOwners(hex: string, limit: number): ProvenOwner[] {
    const out: ProvenOwner[] = [];
    for (const { key, value } of this.meta.range<unknown>(T.refs, { prefix: `${hex}/` })) {
      if (out.length >= limit) break;
      const upload = String(key).slice(hex.length + 1);
      const [c] = this.committed([upload]);
      if (c) out.push({ ...c, ...(value instanceof Uint8Array ? { pin: Buffer.from(value) } : {}) });
    }
    return out;
  }

  /**
   * References stored before commits carried proofs: (upload, chunk) pairs of committed uploads
   * whose reference holds no pin, in key order after `after`, at most `limit`. `commit` says the
   * upload's commit holds no proof either.
   */
  unproven(after: UnprovenRef | undefined, limit: number): UnprovenRef[] {
    const out: UnprovenRef[] = [];
    for (const { key, value } of this.meta.range<UploadRecord>(T.uploads, after !== undefined ? { start: after.upload } : {})) {
      if (value.s !== 'c') continue;
      const upload = String(key);
      const prefix = `${upload}/`;
      const from = after !== undefined && upload === after.upload ? `${prefix}${after.hex}` : undefined;
      const commit = !this.meta.has(T.commitProofs, upload);
      for (const e of this.meta.range(T.owned, from !== undefined ? { start: from } : { prefix })) {
        const k = String(e.key);
        if (!k.startsWith(prefix)) break;
        if (k === from) continue;
        const hex = k.slice(prefix.length);
        if (this.meta.get<unknown>(T.refs, `${hex}/${upload}`) instanceof Uint8Array) continue;
        out.push({ upload, hex, root: value.root, at: value.at, commit });
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  /** The proofs held here for one upload's reference to one chunk, when both are held. */
  proofsOf(upload: string, hex: string): ProvenOwner | undefined {
    const pin = this.meta.get<unknown>(T.refs, `${hex}/${upload}`);
    const [c] = this.committed([upload]);
    if (!c?.proof || !(pin instanceof Uint8Array)) return undefined;
    return { ...c, pin: Buffer.from(pin) };
  }

  /** Stores proofs a full node made for records older than proofs (see unproven). */
  async addProofs(upload: string, commitProof: Uint8Array | undefined, pins: readonly { hex: string; pin: Uint8Array }[]): Promise<void> {
    const writes: Promise<unknown>[] = pins.map((p) => this.meta.put(T.refs, `${p.hex}/${upload}`, Buffer.from(p.pin)));
    if (commitProof !== undefined) writes.push(this.meta.put(T.commitProofs, upload, Buffer.from(commitProof)));
    await Promise.all(writes);
  }
}
