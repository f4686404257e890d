/**
 * The native chunk cipher (content/native-gcm.ts): where the addon is built it must give Node's
 * AES-256-GCM byte for byte, refuse altered bytes with its output zeroed, and refuse bad
 * arguments; a chunk sealed with it and one sealed with Node's cipher (TESSERA_NATIVE_SEAL=off)
 * are the same bytes, so nodes with and without the addon store and read each other's chunks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { gcmDisagreement, nativeGcm, type NativeGcm } from '../../../src/content/native-gcm.js';
import { decryptChunk, encryptChunk, GCM_TAG_BYTES } from '../../../src/content/crypto.js';
import { NATIVE_SEAL_ENV } from '../../../src/native-addon.js';

const gcm = nativeGcm();
const SIZES = [0, 1, 15, 16, 17, 1000, 65536, (1 << 20) + 3];

function nodeSeal(key: Buffer, iv: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, iv);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

describe('native chunk cipher', { skip: gcm === undefined ? 'the native addon is not built here' : false }, () => {
  const g = gcm as NativeGcm;

  it("seals exactly as Node's AES-256-GCM and opens what it sealed, at every size", () => {
    for (const n of SIZES) {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const plain = randomBytes(n);
      const out = Buffer.alloc(n + GCM_TAG_BYTES);
      g.gcmSeal(key, iv, plain, out);
      assert.ok(out.equals(nodeSeal(key, iv, plain)), `${n} bytes`);
      const back = Buffer.alloc(n);
      assert.equal(g.gcmOpen(key, iv, out, back), true, `${n} bytes open`);
      assert.ok(back.equals(plain), `${n} bytes round trip`);
    }
  });

  it('refuses a flipped bit in the ciphertext or the tag, and zeroes what it decrypted', () => {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const plain = randomBytes(5000);
    const sealed = nodeSeal(key, iv, plain);
    for (const at of [0, 2500, plain.length - 1, plain.length, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 0x10;
      const back = Buffer.alloc(plain.length, 0xaa);
      assert.equal(g.gcmOpen(key, iv, bad, back), false, `bit flipped at ${at}`);
      assert.ok(back.every((b) => b === 0), `output zeroed after the flip at ${at}`);
    }
    assert.equal(g.gcmOpen(randomBytes(32), iv, sealed, Buffer.alloc(plain.length)), false, 'another key');
  });

  it('refuses bad arguments with a TypeError instead of touching memory it was not given', () => {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    assert.throws(() => g.gcmSeal(key, iv, Buffer.alloc(100), Buffer.alloc(100 + GCM_TAG_BYTES - 1)), TypeError);
    assert.throws(() => g.gcmSeal(key.subarray(1), iv, Buffer.alloc(1), Buffer.alloc(32)), TypeError);
    assert.throws(() => g.gcmSeal(key, iv.subarray(1), Buffer.alloc(1), Buffer.alloc(32)), TypeError);
    assert.throws(() => g.gcmOpen(key, iv, Buffer.alloc(GCM_TAG_BYTES - 1), Buffer.alloc(0)), TypeError);
    assert.throws(() => g.gcmOpen(key, iv, Buffer.alloc(100), Buffer.alloc(100 - GCM_TAG_BYTES - 1)), TypeError);
    assert.throws(() => (g.gcmSeal as (...a: unknown[]) => void)(key, iv, 'text', Buffer.alloc(32)), TypeError);
  });

  it('the load check turns away a cipher that differs from Node or opens altered bytes', () => {
    assert.equal(gcmDisagreement(g), undefined);
    const wrong: NativeGcm = { gcmSeal: (k, iv, p, o) => { g.gcmSeal(k, iv, p, o); o[0]! ^= 1; }, gcmOpen: g.gcmOpen };
    assert.match(gcmDisagreement(wrong) ?? '', /differs/);
    const lenient: NativeGcm = { gcmSeal: g.gcmSeal, gcmOpen: (k, iv, d, o) => { g.gcmOpen(k, iv, d, o); return true; } };
    assert.match(gcmDisagreement(lenient) ?? '', /altered/);
  });
});

describe('chunks sealed with and without the addon', () => {
  it(`are the same bytes, id and key (${NATIVE_SEAL_ENV}=off seals with Node's cipher), and each opens the other's`, () => {
    const secret = createHash('sha256').update('a fixed test secret').digest();
    const plain = createHash('sha512').update('a fixed plaintext').digest();
    const big = Buffer.concat(Array.from({ length: 3000 }, () => plain));
    // crypto.js beside the built test, crypto.ts (tsx resolves the .js name) beside the source.
    const probe = fileURLToPath(new URL('../../../src/content/crypto.js', import.meta.url));
    const script = `import(${JSON.stringify(probe)}).then((m) => { const c = m.encryptChunk(Buffer.concat(Array.from({ length: 3000 }, () => Buffer.from('${plain.toString('hex')}', 'hex'))), Buffer.from('${secret.toString('hex')}', 'hex')); console.log(JSON.stringify({ id: c.id.toString('hex'), key: c.key.toString('hex'), data: c.data.toString('base64') })); })`;
    const portable = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', env: { ...process.env, [NATIVE_SEAL_ENV]: 'off' }, timeout: 60_000 })) as { id: string; key: string; data: string };
    const here = encryptChunk(big, secret);
    assert.equal(here.id.toString('hex'), portable.id);
    assert.equal(here.key.toString('hex'), portable.key);
    assert.equal(here.data.toString('base64'), portable.data);
    assert.ok(decryptChunk(Buffer.from(portable.data, 'base64'), here.key, here.id).equals(big));
  });
});
