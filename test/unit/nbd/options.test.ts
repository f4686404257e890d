import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeString, matchMetaContexts, parseInfoRequest, parseMetaContextRequest } from '../../../src/block/nbd/options.js';
import * as P from '../../../src/block/nbd/protocol.js';
import { MAX_META_QUERIES } from '../../../src/block/nbd/limits.js';
import { infoData, metaContextData } from '../../helpers/nbd-raw-client.js';

describe('NBD option parsing', () => {
  it('round-trips INFO/GO requests', () => {
    const r = parseInfoRequest(infoData('vol-ä', [P.INFO_BLOCK_SIZE, P.INFO_NAME]));
    assert.deepEqual(r, { ok: true, value: { name: 'vol-ä', requests: [P.INFO_BLOCK_SIZE, P.INFO_NAME] } });
  });

  it('rejects truncated, overlong and inconsistent INFO/GO data', () => {
    assert.equal(parseInfoRequest(Buffer.alloc(5)).ok, false);
    const long = infoData('x', []);
    long.writeUInt32BE(2, 0);
    assert.equal(parseInfoRequest(long).ok, false);
    const count = infoData('x', [1]);
    count.writeUInt16BE(3, 5);
    assert.equal(parseInfoRequest(count).ok, false);
    assert.equal(parseInfoRequest(infoData('x'.repeat(P.MAX_STRING_BYTES + 1), [])).ok, false);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const b = Buffer.from(bytes);
        for (const r of [parseInfoRequest(b), parseMetaContextRequest(b)]) {
          if (!r.ok) assert.ok([P.REP_ERR_INVALID, P.REP_ERR_TOO_BIG].includes(r.reply) && r.message.length > 0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parses meta context requests and bounds the query count', () => {
    assert.deepEqual(parseMetaContextRequest(metaContextData('d', ['base:allocation', 'x-y:z'])), {
      ok: true,
      value: { exportName: 'd', queries: ['base:allocation', 'x-y:z'] },
    });
    const many = parseMetaContextRequest(metaContextData('d', Array.from({ length: MAX_META_QUERIES + 1 }, () => 'a:b')));
    assert.equal(many.ok, false);
    assert.equal(!many.ok && many.reply, P.REP_ERR_TOO_BIG);
    assert.equal(parseMetaContextRequest(Buffer.concat([metaContextData('d', ['a:b']), Buffer.from([1])])).ok, false);
  });

  it('matches base:allocation, wildcards only when listing, ignores other namespaces', () => {
    assert.deepEqual(matchMetaContexts([], 'list'), { ok: true, value: [P.META_BASE_ALLOCATION] });
    assert.deepEqual(matchMetaContexts([], 'set'), { ok: true, value: [] });
    assert.deepEqual(matchMetaContexts(['base:'], 'list'), { ok: true, value: [P.META_BASE_ALLOCATION] });
    assert.deepEqual(matchMetaContexts(['base:'], 'set'), { ok: true, value: [] });
    assert.deepEqual(matchMetaContexts(['qemu:x', 'base:other'], 'set'), { ok: true, value: [] });
    assert.deepEqual(matchMetaContexts(['base:allocation', 'base:allocation'], 'set'), { ok: true, value: [P.META_BASE_ALLOCATION] });
    assert.equal(matchMetaContexts(['nocolon'], 'set').ok, false);
  });

  it('accepts only NUL-free UTF-8 strings', () => {
    assert.equal(decodeString(Buffer.from([0xc3, 0x28]), 's').ok, false);
    assert.equal(decodeString(Buffer.from('a\0b'), 's').ok, false);
    assert.deepEqual(decodeString(Buffer.from('ok'), 's'), { ok: true, value: 'ok' });
  });
});
