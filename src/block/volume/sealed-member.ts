/**
 * A VolumeMember that seals every sector before it reaches the member it wraps and opens (verifies)
 * every sector it reads back: the wrapped member, and the network to it, see only ciphertext. The
 * volume above addresses plain member bytes; this maps them onto sealed records (see seal.ts).
 * A read whose records fail authentication, or carry another version than the master expects for
 * the sector (seal-versions.ts: a replayed older record), rejects with CORRUPT, which the volume
 * answers from redundancy; writes that cover part of a sector read and re-seal the whole sector.
 */
import { badInput } from '../../errors.js';
import { checkMemberRange, type MemberWriteOptions, type VolumeMember } from './member.js';
import { BAD_RECORD, SECTOR_BYTES, SEALED_SECTOR_BYTES, sealedUnitBytes, sectorsCorrupt, type OpenedRun, type SectorSealer } from './seal.js';
import type { SealVersions } from './seal-versions.js';

/** One unit's slice of a sector-aligned member range. */
interface Span {
  /** Plain member offset of the first sector. */
  plain: number;
  /** Physical offset of its first record on the wrapped member. */
  phys: number;
  sectors: number;
}

export class SealedMember implements VolumeMember {
  readonly id: string;
  readonly size: number;
  private readonly sealedUnit: number;

  /**
   * `inner` holds `units` sealed units; this exposes `units * unitSize` plain bytes. `versions`
   * (shared by the volume's members, this one at `index`) hands out seal versions and checks the
   * ones read back.
   */
  constructor(
    private readonly inner: VolumeMember,
    private readonly sealer: SectorSealer,
    private readonly unitSize: number,
    units: number,
    private readonly versions: { table: SealVersions; index: number },
  ) {
    this.id = inner.id;
    this.sealedUnit = sealedUnitBytes(unitSize);
    this.size = units * unitSize;
    if (inner.size < units * this.sealedUnit) throw badInput(`member ${inner.id} holds ${inner.size} bytes, ${units} sealed units need ${units * this.sealedUnit}`);
  }

  /** Splits sector-aligned plain range [a, b) at unit boundaries. */
  private spans(a: number, b: number): Span[] {
    const out: Span[] = [];
    for (let pos = a; pos < b;) {
      const unit = Math.floor(pos / this.unitSize);
      const end = Math.min(b, (unit + 1) * this.unitSize);
      out.push({ plain: pos, phys: unit * this.sealedUnit + ((pos - unit * this.unitSize) / SECTOR_BYTES) * SEALED_SECTOR_BYTES, sectors: (end - pos) / SECTOR_BYTES });
      pos = end;
    }
    return out;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkMemberRange(this.id, this.size, offset, length);
    if (length === 0) return Buffer.alloc(0);
    const a = Math.floor(offset / SECTOR_BYTES) * SECTOR_BYTES;
    const b = Math.ceil((offset + length) / SECTOR_BYTES) * SECTOR_BYTES;
    const spans = this.spans(a, b);
    if (spans.length === 1) {
      // Nearly every read lies within one unit: no promise list, closures or gathering per read.
      const s = spans[0] as Span;
      const opening = this.sealer.openRun(await this.inner.read(s.phys, s.sectors * SEALED_SECTOR_BYTES), s.plain / SECTOR_BYTES, s.sectors);
      const run = opening instanceof Promise ? await opening : opening;
      const bad = this.unaccepted(s, run, []);
      if (bad.length > 0) throw sectorsCorrupt(this.id, bad, bad.length);
      return run.plain.subarray(offset - a, offset - a + length);
    }
    const recs = await Promise.all(spans.map((s) => this.inner.read(s.phys, s.sectors * SEALED_SECTOR_BYTES)));
    // Each span's records are opened in place, the plaintext moved down over the trailers.
    const runs = spans.map((s, n) => this.sealer.openRun(recs[n] as Buffer, s.plain / SECTOR_BYTES, s.sectors));
    const opened = runs.some((r) => r instanceof Promise) ? await Promise.all(runs) : runs as OpenedRun[];
    const bad: number[] = [];
    spans.forEach((s, n) => this.unaccepted(s, opened[n] as OpenedRun, bad));
    if (bad.length > 0) throw sectorsCorrupt(this.id, bad, bad.length);
    const out = Buffer.allocUnsafe(b - a);
    spans.forEach((s, n) => (opened[n] as OpenedRun).plain.copy(out, s.plain - a, 0, s.sectors * SECTOR_BYTES));
    return out.subarray(offset - a, offset - a + length);
  }

  /** Adds to `bad` the sectors of span `s` whose records failed authentication or carry another version than expected. */
  private unaccepted(s: Span, run: OpenedRun, bad: number[]): number[] {
    const first = s.plain / SECTOR_BYTES;
    for (let i = 0; i < s.sectors; i++) {
      const v = run.versions[i] as number;
      if (v === BAD_RECORD || !this.versions.table.accept(this.versions.index, first + i, v)) bad.push(first + i);
    }
    return bad;
  }

  async write(offset: number, data: Buffer, opts: MemberWriteOptions = {}): Promise<void> {
    checkMemberRange(this.id, this.size, offset, data.length);
    if (data.length === 0) return;
    const a = Math.floor(offset / SECTOR_BYTES) * SECTOR_BYTES;
    const b = Math.ceil((offset + data.length) / SECTOR_BYTES) * SECTOR_BYTES;
    let plain = data;
    if (a !== offset || b !== offset + data.length) {
      // A partial sector is re-sealed whole: its other bytes come from the member, verified.
      plain = Buffer.allocUnsafe(b - a);
      const [head, tail] = await Promise.all([
        a !== offset ? this.read(a, SECTOR_BYTES) : undefined,
        b !== offset + data.length && (b - SECTOR_BYTES >= offset || a === offset) ? this.read(b - SECTOR_BYTES, SECTOR_BYTES) : undefined,
      ]);
      head?.copy(plain, 0);
      tail?.copy(plain, b - a - SECTOR_BYTES);
      data.copy(plain, offset - a);
    }
    const spans = this.spans(a, b);
    const vt = this.versions;
    // No await between the last check and the takes below: another writer could take the room.
    while (!vt.table.canTake((b - a) / SECTOR_BYTES)) await vt.table.reserve((b - a) / SECTOR_BYTES);
    // Each span takes its versions before its first await, so all of them in this turn. One span
    // (nearly every write) is awaited directly: no closure and Promise.all per write.
    if (spans.length === 1) await this.writeSpan(spans[0] as Span, plain, opts);
    else await Promise.all(spans.map((s) => this.writeSpan(s, plain.subarray(s.plain - a, s.plain - a + s.sectors * SECTOR_BYTES), opts)));
  }

  /** Seals and writes one span's sectors `run`; a whole buffer is the cache key of sealRun (mirrors pass the same one, see there). */
  private async writeSpan(s: Span, run: Buffer, opts: MemberWriteOptions): Promise<void> {
    const vt = this.versions;
    const first = s.plain / SECTOR_BYTES;
    const sealed = this.sealer.sealRun(run, first, () => vt.table.take(s.sectors));
    vt.table.wrote(vt.index, first, s.sectors, sealed.firstVersion);
    // Sealed by a worker, the records land after those of later writes of other sectors; two
    // writes of one sector never overlap (the volume holds the stripe lock across both).
    const rec = sealed.rec instanceof Promise ? await sealed.rec : sealed.rec;
    await this.inner.write(s.phys, rec, opts);
    this.sealer.written(sealed);
    if (opts.durable === true) await vt.table.flushed(vt.index, [[first, s.sectors, sealed.firstVersion]]);
    else vt.table.landed(vt.index, first, s.sectors, sealed.firstVersion);
  }

  /** The versions of writes that landed before the flush became durable with it (seal-versions.ts). */
  async flush(): Promise<void> {
    const vt = this.versions;
    const landed = vt.table.beginFlush(vt.index);
    try {
      await this.inner.flush();
    } catch (e) {
      vt.table.flushFailed(vt.index, landed);
      throw e;
    }
    await vt.table.flushed(vt.index, landed);
  }
  generations(firstUnit: number, count: number): Promise<number[]> { return this.inner.generations(firstUnit, count); }
  close(): Promise<void> { return this.inner.close(); }
}
