/**
 * The sinks `tessera get` writes through, on real files: a batch larger than one write lands
 * whole and in order, at the sink's offsets or the descriptor's own position, and a failing write
 * comes back as the caller's error, once for the batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_WRITE_BYTES, fdSink, fileSink } from '../../../src/cli/download-sinks.js';

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-sinks-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Sizes that split into several writes, one that does not, and ones that end mid-write.
const pieces = () => [FILE_WRITE_BYTES * 5 + 123, 17, FILE_WRITE_BYTES, FILE_WRITE_BYTES * 2 - 1].map((n) => randomBytes(n));

test('fileSink writes each batch as pieces at their offsets, after what the file already holds', async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, 'out');
    const prefix = randomBytes(1000);
    writeFileSync(path, prefix);
    const fd = openSync(path, 'r+');
    const seen: number[] = [];
    try {
      const sink = fileSink(fd, prefix.length, { onBytes: (n) => seen.push(n), writeError: (err) => err as Error });
      const parts = pieces();
      for (const p of parts) await sink.write(p);
      assert.ok(readFileSync(path).equals(Buffer.concat([prefix, ...parts])));
      assert.deepEqual(seen, parts.map((p) => p.length), 'each batch is counted once, when all of it is written');
    } finally {
      closeSync(fd);
    }
  });
});

test('fileSink.writeAt: ranges written side by side land at their offsets, one write in flight at a time', async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, 'out');
    writeFileSync(path, '');
    const fd = openSync(path, 'r+');
    try {
      const parts = pieces();
      const whole = Buffer.concat(parts);
      const sink = fileSink(fd, 0, { writeError: (err) => err as Error });
      // Every piece asked for at once, last first, as two ranges of a download would.
      let offset = 0;
      const at = parts.map((p) => {
        const o = offset;
        offset += p.length;
        return o;
      });
      await Promise.all(parts.map((p, i) => ({ p, o: at[i] as number })).reverse().map(({ p, o }) => (sink.writeAt as NonNullable<typeof sink.writeAt>)(p, o)));
      assert.ok(readFileSync(path).equals(whole));
    } finally {
      closeSync(fd);
    }
  });
});

test('fdSink writes in order at the descriptor position, appending on an O_APPEND descriptor', async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, 'out');
    writeFileSync(path, 'existing\n');
    const fd = openSync(path, 'a');
    try {
      const sink = fdSink(fd, FILE_WRITE_BYTES, { writeError: (err) => err as Error });
      const parts = pieces();
      for (const p of parts) await sink.write(p);
      assert.ok(readFileSync(path).equals(Buffer.concat([Buffer.from('existing\n'), ...parts])));
    } finally {
      closeSync(fd);
    }
  });
});

test('writeNow: pieces land in order before it returns, at the file sink\'s offsets or the descriptor\'s position', async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, 'out');
    const prefix = randomBytes(1000);
    writeFileSync(path, prefix);
    const fd = openSync(path, 'r+');
    const appended = join(dir, 'appended');
    writeFileSync(appended, 'existing\n');
    const afd = openSync(appended, 'a');
    try {
      const seen: number[] = [];
      const sink = fileSink(fd, prefix.length, { onBytes: (n) => seen.push(n), writeError: (err) => err as Error });
      const app = fdSink(afd, FILE_WRITE_BYTES, { writeError: (err) => err as Error });
      const parts = pieces();
      for (const p of parts) {
        (sink.writeNow as NonNullable<typeof sink.writeNow>)(p);
        (app.writeNow as NonNullable<typeof app.writeNow>)(p);
      }
      assert.ok(readFileSync(path).equals(Buffer.concat([prefix, ...parts])));
      assert.ok(readFileSync(appended).equals(Buffer.concat([Buffer.from('existing\n'), ...parts])));
      assert.deepEqual(seen, parts.map((p) => p.length), 'each piece is counted once');
    } finally {
      closeSync(fd);
      closeSync(afd);
    }
  });
});

test('a failed write reaches the caller as its own error, once per batch', async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, 'out');
    writeFileSync(path, '');
    // Opened for reading only: every write fails with EBADF.
    const fd = openSync(path, 'r');
    try {
      const mine = new Error('cannot write out');
      const causes: unknown[] = [];
      const writeError = (err: unknown) => {
        causes.push(err);
        return mine;
      };
      await assert.rejects(fileSink(fd, 0, { writeError }).write(randomBytes(FILE_WRITE_BYTES * 3)), (err) => err === mine);
      await assert.rejects(fdSink(fd, FILE_WRITE_BYTES, { writeError }).write(randomBytes(10)), (err) => err === mine);
      const now = fileSink(fd, 0, { writeError }).writeNow as (piece: Buffer) => void;
      assert.throws(() => now(randomBytes(FILE_WRITE_BYTES * 3)), (err) => err === mine);
      assert.deepEqual(
        causes.map((c) => (c as NodeJS.ErrnoException).code),
        ['EBADF', 'EBADF', 'EBADF'],
        'one error per batch, with the system error as its cause',
      );
    } finally {
      closeSync(fd);
    }
  });
});
