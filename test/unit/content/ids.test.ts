import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { TesseraError, isTesseraError } from '../../../src/errors.js';
import {
  FILE_ID_CHARS,
  FILE_ID_PREFIX,
  chunkIdFromHex,
  chunkIdToHex,
  formatFileId,
  isFileId,
  parseFileId,
} from '../../../src/content/ids.js';

const badInputMatching = (re: RegExp) => (e: unknown) => isTesseraError(e, 'BAD_INPUT') && re.test((e as Error).message);

test('file ids round trip and have the documented shape', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (id, key) => {
      const text = formatFileId(id, key);
      assert.equal(text.length, FILE_ID_CHARS);
      assert.ok(text.startsWith(FILE_ID_PREFIX));
      assert.match(text.slice(FILE_ID_PREFIX.length), /^[a-z2-7]+$/);
      const parsed = parseFileId(text);
      assert.deepEqual(new Uint8Array(parsed.rootId), id);
      assert.deepEqual(new Uint8Array(parsed.rootKey), key);
      assert.deepEqual(parseFileId(text.toUpperCase()), parsed);
    }),
  );
});

test('malformed file ids are rejected with BAD_INPUT naming the problem', () => {
  const good = formatFileId(randomBytes(32), randomBytes(32));
  assert.throws(() => parseFileId(good.slice(0, -1)), badInputMatching(/characters/));
  assert.throws(() => parseFileId(good + 'a'), badInputMatching(/characters/));
  assert.throws(() => parseFileId('xxxx' + good.slice(4)), badInputMatching(/start with/));
  assert.throws(() => parseFileId(good.slice(0, 10) + '1' + good.slice(11)), badInputMatching(/bad character at position 10/));
  assert.throws(() => parseFileId(good.slice(0, 10) + 'é' + good.slice(11)), badInputMatching(/bad character/));
  // The last character carries 2 data bits and 3 padding bits; padding must be zero.
  const last = good.at(-1) as string;
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const stray = alphabet[alphabet.indexOf(last) ^ 1] as string;
  assert.throws(() => parseFileId(good.slice(0, -1) + stray), badInputMatching(/canonical/));
  assert.throws(() => parseFileId(42 as unknown as string), badInputMatching(/string/));
  assert.equal(isFileId(good), true);
  assert.equal(isFileId('tsr1'), false);
});

test('parsing arbitrary strings never throws anything but TesseraError', () => {
  const good = formatFileId(randomBytes(32), randomBytes(32));
  const mutated = fc
    .tuple(fc.nat(FILE_ID_CHARS - 1), fc.string({ minLength: 0, maxLength: 3, unit: 'grapheme' }))
    .map(([pos, s]) => good.slice(0, pos) + s + good.slice(pos + 1));
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 200, unit: 'binary' }), mutated), (text) => {
      try {
        const parsed = parseFileId(text);
        // Anything accepted must be canonical: formatting it again gives the same id.
        assert.equal(formatFileId(parsed.rootId, parsed.rootKey), text.toLowerCase());
      } catch (e) {
        assert.ok(e instanceof TesseraError, `unexpected ${String(e)}`);
        assert.equal(e.code, 'BAD_INPUT');
      }
    }),
    { numRuns: 2000 },
  );
});

test('chunk id hex helpers round trip and reject bad input', () => {
  const id = randomBytes(32);
  const hex = chunkIdToHex(id);
  assert.equal(hex, id.toString('hex'));
  assert.deepEqual(chunkIdFromHex(hex), id);
  assert.equal(chunkIdToHex(new Uint8Array(id)), hex);
  assert.throws(() => chunkIdToHex(randomBytes(31)), badInputMatching(/32/));
  assert.throws(() => chunkIdFromHex(hex.slice(1)), badInputMatching(/64 hex digits/));
  assert.throws(() => chunkIdFromHex(hex.toUpperCase().replace(/[0-9]/g, 'A')), badInputMatching(/character/));
  assert.throws(() => chunkIdFromHex('g' + hex.slice(1)), badInputMatching(/character/));
});
