import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkTlsPolicy, isLoopbackHost, MAX_PSK_ENTRIES, parsePskFile } from '../../../src/block/nbd/tls.js';
import { RefusalLog } from '../../../src/block/nbd/refusal-log.js';
import { isTesseraError } from '../../../src/errors.js';
import type { Logger } from '../../../src/log.js';

const KEY = 'a'.repeat(64);

describe('PSK files', () => {
  it('reads psktool lines, skipping blanks and comments', () => {
    const m = parsePskFile(`# keys\nalice:${KEY}\n\nbob:${'0f'.repeat(16)}\r\n`);
    assert.deepEqual([...m.keys()], ['alice', 'bob']);
    assert.equal(m.get('bob')!.length, 16);
  });
  for (const [text, why] of [
    [`:${KEY}`, /no identity/],
    [`alice:${KEY.slice(1)}`, /hex digits/],
    ['alice:zz', /hex digits/],
    [`alice:${'ab'.repeat(8)}`, /16 to 64/],
    [`alice:${'ab'.repeat(65)}`, /16 to 64/],
    [`alice:${KEY}\nalice:${KEY}`, /twice/],
    [`${'x'.repeat(256)}:${KEY}`, /over 255 bytes/],
    ['# nothing\n', /no 'username:hexkey'/],
  ] as const) {
    it(`refuses ${JSON.stringify(text.slice(0, 24))}`, () => {
      assert.throws(() => parsePskFile(text), (e: unknown) => isTesseraError(e, 'BAD_INPUT') && why.test((e as Error).message));
    });
  }
  it(`refuses more than ${MAX_PSK_ENTRIES} identities`, () => {
    const lines = Array.from({ length: MAX_PSK_ENTRIES + 1 }, (_, i) => `u${i}:${KEY}`).join('\n');
    assert.throws(() => parsePskFile(lines), (e: unknown) => isTesseraError(e, 'TOO_LARGE'));
  });
});

describe('NBD bind policy', () => {
  const psk = { psk: new Map([['a', Buffer.alloc(32)]]) };
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com']) assert.equal(isLoopbackHost(h), false, h);
  });
  it('allows plaintext on loopback and unix sockets only, unless told', () => {
    checkTlsPolicy({ mode: 'off' }, '127.0.0.1', false);
    checkTlsPolicy({ mode: 'off' }, null, false);
    checkTlsPolicy({ mode: 'require', credentials: psk }, '0.0.0.0', false);
    checkTlsPolicy({ mode: 'off' }, '0.0.0.0', true);
    assert.throws(() => checkTlsPolicy({ mode: 'off' }, '0.0.0.0', false), /without TLS/);
    assert.throws(() => checkTlsPolicy({ mode: 'on', credentials: psk }, '10.1.1.1', false), /TLS optional/);
  });
  it('needs credentials for TLS, and none with TLS off', () => {
    assert.throws(() => checkTlsPolicy({ mode: 'require' }, '127.0.0.1', false), /needs credentials/);
    assert.throws(() => checkTlsPolicy({ mode: 'off', credentials: psk }, '127.0.0.1', false), /--tls off/);
  });
});

describe('RefusalLog', () => {
  it('logs a few per interval, counts the rest, and reports them with the next', () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = { warn: (o: Record<string, unknown>) => lines.push(o) } as unknown as Logger;
    let now = 0;
    const log = new RefusalLog(logger, 3, 1000, () => now);
    for (let i = 0; i < 10; i++) log.warn({ i }, 'refused');
    assert.deepEqual(lines.map((l) => l.i), [0, 1, 2]);
    now = 1000;
    assert.equal(log.warn({ i: 10 }, 'refused'), true);
    assert.equal(lines.at(-1)!.suppressedSinceLast, 7);
    assert.equal(log.warn({ i: 11 }, 'refused'), true);
    assert.equal(lines.at(-1)!.suppressedSinceLast, undefined);
  });
});
