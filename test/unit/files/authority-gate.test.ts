import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { AuthoritySigner, AuthorityVerifier, MAX_DRAIN_ORDER_AGE_MS, MAX_PROOF_FUTURE_MS } from '../../../src/content/authority.js';
import { AuthorityGate, VERIFIED_PINS_KEPT } from '../../../src/files/authority-gate.js';

const NOW = 1_800_000_000_000;
const signer = new AuthoritySigner(randomBytes(32));
const root = 'c'.repeat(64);

function gate(verifier: AuthorityVerifier | null = new AuthorityVerifier(signer.publicKey)) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { g: new AuthorityGate(verifier ?? undefined, log, () => NOW), lines };
}

test('a proven tombstone passes; one without proof, with a wrong one, or for another file is refused with AUTH', () => {
  const { g } = gate();
  const proof = signer.prove({ kind: 'fileRm', root, at: NOW });
  assert.doesNotThrow(() => g.tombstone({ root, at: NOW, proof }, 'peer1'));
  assert.throws(() => g.tombstone({ root, at: NOW }, 'peer1'), { code: 'AUTH', message: /carries no proof/ });
  assert.throws(() => g.tombstone({ root, at: NOW, proof: new AuthoritySigner(randomBytes(32)).prove({ kind: 'fileRm', root, at: NOW }) }, 'peer1'), { code: 'AUTH', message: /does not match/ });
  assert.throws(() => g.tombstone({ root: 'd'.repeat(64), at: NOW, proof }, 'peer1'), { code: 'AUTH' });
  assert.equal(g.refused, 3);
});

test('a tombstone dated beyond the clock bound is refused even with a valid proof', () => {
  const { g } = gate();
  const at = NOW + MAX_PROOF_FUTURE_MS + 1;
  assert.throws(() => g.tombstone({ root, at, proof: signer.prove({ kind: 'fileRm', root, at }) }, 'peer1'), { code: 'AUTH', message: /future/ });
});

test('a drain order is refused when meant for another node, stale, undated or unproven', () => {
  const { g } = gate();
  const at = NOW - 1000;
  const proof = signer.prove({ kind: 'drain', target: 'self', on: true, at });
  assert.doesNotThrow(() => g.drain({ on: true, at, proof }, 'self', 'peer1'));
  assert.throws(() => g.drain({ on: true, at, proof }, 'other', 'peer1'), { code: 'AUTH', message: /does not match/ });
  const old = NOW - MAX_DRAIN_ORDER_AGE_MS - 1;
  assert.throws(() => g.drain({ on: true, at: old, proof: signer.prove({ kind: 'drain', target: 'self', on: true, at: old }) }, 'self', 'peer1'), { code: 'AUTH', message: /stale/ });
  assert.throws(() => g.drain({ on: true }, 'self', 'peer1'), { code: 'AUTH', message: /stale or undated/ });
});

test('a node without the authority key refuses every destructive message', () => {
  const { g } = gate(null);
  const proof = signer.prove({ kind: 'fileRm', root, at: NOW });
  assert.throws(() => g.tombstone({ root, at: NOW, proof }, 'peer1'), { code: 'AUTH', message: /no authority key/ });
});

test('refusals are logged once per sender per interval, with the count of those held back', () => {
  const { g, lines } = gate();
  for (let i = 0; i < 50; i++) assert.throws(() => g.tombstone({ root, at: NOW }, 'peer1'));
  assert.throws(() => g.tombstone({ root, at: NOW }, 'peer2'));
  assert.equal(lines.length, 2);
  assert.equal(lines[0]!.source, 'peer1');
  assert.equal(lines[0]!.method, 'file.rm');
  assert.equal(lines[1]!.source, 'peer2');
  assert.equal(g.refused, 51);
});

test('a pin verified once is not verified again; a different proof, chunk or upload is still checked, and the memory is bounded', () => {
  let checks = 0;
  const counting = new (class extends AuthorityVerifier {
    override valid(...a: Parameters<AuthorityVerifier['valid']>): boolean {
      checks++;
      return super.valid(...a);
    }
  })(signer.publicKey);
  const { g } = gate(counting);
  const upload = 'u'.repeat(32);
  const id = randomBytes(32);
  const pin = signer.prove({ kind: 'pin', upload, chunk: id });
  g.pins('chunk.claim', upload, [id], [pin], 'peer1');
  g.pins('chunk.put', upload, [id], [pin], 'peer1');
  assert.equal(checks, 1, 'the claim verified it; the put with the same pin did not again');
  const forged = Buffer.from(pin);
  forged[0]! ^= 1;
  assert.throws(() => g.pins('chunk.put', upload, [id], [forged], 'peer1'), { code: 'AUTH' });
  assert.throws(() => g.pins('chunk.put', upload, [randomBytes(32)], [pin], 'peer1'), { code: 'AUTH' }, 'the remembered pin names one chunk only');
  assert.throws(() => g.pins('chunk.put', 'v'.repeat(32), [id], [pin], 'peer1'), { code: 'AUTH' }, 'and one upload only');
  assert.throws(() => g.pins('chunk.put', upload, [id], undefined, 'peer1'), { code: 'AUTH', message: /carries no proof/ });
  // Past the bound the oldest is forgotten and checked again when it comes back.
  for (let i = 0; i < VERIFIED_PINS_KEPT; i++) {
    const other = randomBytes(32);
    g.pins('chunk.claim', upload, [other], [signer.prove({ kind: 'pin', upload, chunk: other })], 'peer1');
  }
  const before = checks;
  g.pins('chunk.put', upload, [id], [pin], 'peer1');
  assert.equal(checks, before + 1, 'a pin pushed out of the memory is verified again');
});
