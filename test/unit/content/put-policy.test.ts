/** Put's redundancy rules: one check that the CLI, the API route and the files service share. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPutPolicy, parseShards, resolvePutPolicy, DEFAULT_POLICY, type PutPolicyNames } from '../../../src/content/index.js';
import { MAX_REPLICAS } from '../../../src/limits.js';
import { putPolicy } from '../../../src/cli/commands/put.js';

const FLAGS: PutPolicyNames = { replicas: '--replicas', quorum: '--quorum', ec: '--ec' };
const refused = (field: string, message: RegExp) => (e: unknown) => {
  const err = e as { code?: string; message: string; details?: { field?: string } };
  assert.equal(err.code, 'BAD_INPUT');
  assert.equal(err.details?.field, field);
  assert.match(err.message, message);
  return true;
};

test('a request that keeps the rules passes unchanged', () => {
  for (const req of [{}, { replicas: 3 }, { replicas: 5, quorum: 5 }, { quorum: 1 }, { ec: { k: 4, m: 2 } }, { replicas: MAX_REPLICAS, quorum: 1 }]) {
    assert.deepEqual(checkPutPolicy(req), req);
  }
});

test('each broken rule is refused with the field it concerns, named as the caller names it', () => {
  assert.throws(() => checkPutPolicy({ replicas: 3, ec: { k: 4, m: 2 } }), refused('ec', /^ec stores shards instead of copies: give it without replicas or quorum$/));
  assert.throws(() => checkPutPolicy({ quorum: 2, ec: { k: 4, m: 2 } }, FLAGS), refused('ec', /^--ec stores shards instead of copies: give it without --replicas or --quorum$/));
  assert.throws(() => checkPutPolicy({ ec: { k: 17, m: 2 } }, FLAGS), refused('ec', /^--ec 17\+2: erasure coding needs 1\.\.16 data shards/));
  assert.throws(() => checkPutPolicy({ ec: { k: 4, m: 0 } }), refused('ec', /parity shards/));
  assert.throws(() => checkPutPolicy({ replicas: 0 }), refused('replicas', new RegExp(`^replicas must be a whole number from 1 to ${MAX_REPLICAS}, not 0$`)));
  assert.throws(() => checkPutPolicy({ replicas: MAX_REPLICAS + 1 }, FLAGS), refused('replicas', /^--replicas must be a whole number/));
  assert.throws(() => checkPutPolicy({ replicas: 2.5 }), refused('replicas', /whole number/));
  assert.throws(() => checkPutPolicy({ quorum: 0 }, FLAGS), refused('quorum', /^--quorum must be a whole number/));
  assert.throws(() => checkPutPolicy({ replicas: 2, quorum: 3 }, FLAGS), refused('quorum', /^--quorum 3 is more than --replicas 2: a write cannot wait for more copies than it makes$/));
});

test('shards are parsed from data+parity and nothing else', () => {
  assert.deepEqual(parseShards('4+2'), { k: 4, m: 2 });
  assert.deepEqual(parseShards('10+4'), { k: 10, m: 4 });
  for (const bad of ['3', '4+', '+2', '4+2+1', '100+2', 'x'.repeat(1000)]) {
    assert.throws(() => parseShards(bad, FLAGS), refused('ec', /^--ec .{0,20} is not data\+parity shards such as 4\+2 or 10\+4$/), bad);
  }
});

test('the policy a put gets: its own request first, then the node default', () => {
  const ecDefault = { kind: 'ec', k: 4, m: 2 } as const;
  assert.deepEqual(resolvePutPolicy({}, DEFAULT_POLICY), { kind: 'replicas', r: 3, w: 2 });
  assert.deepEqual(resolvePutPolicy({ replicas: 5 }, DEFAULT_POLICY), { kind: 'replicas', r: 5, w: 3 });
  assert.deepEqual(resolvePutPolicy({ quorum: 3 }, DEFAULT_POLICY), { kind: 'replicas', r: 3, w: 3 });
  assert.deepEqual(resolvePutPolicy({}, ecDefault), ecDefault);
  assert.deepEqual(resolvePutPolicy({ replicas: 2 }, ecDefault), { kind: 'replicas', r: 2, w: 2 });
  assert.deepEqual(resolvePutPolicy({ ec: { k: 2, m: 1 } }, DEFAULT_POLICY), { kind: 'ec', k: 2, m: 1 });
  assert.throws(() => resolvePutPolicy({ quorum: 4 }, DEFAULT_POLICY), refused('quorum', /^quorum 4 is more than the 3 replicas this node makes by default: give replicas too$/));
  assert.throws(() => resolvePutPolicy({ replicas: 1, ec: { k: 2, m: 1 } }, DEFAULT_POLICY), refused('ec', /instead of copies/));
});

test('the CLI checks its flags with the shared rules, naming the flag', () => {
  assert.deepEqual(putPolicy({ replicas: '5' }), { replicas: 5, quorum: 3 });
  assert.deepEqual(putPolicy({ quorum: '1' }), { quorum: 1 });
  assert.deepEqual(putPolicy({ ec: ' 4+2 ' }), { ec: '4+2' });
  assert.throws(() => putPolicy({ replicas: 'many' }), refused('replicas', /^--replicas must be a whole number from 1 to \d+, not 'many'$/));
  assert.throws(() => putPolicy({ replicas: '2', quorum: '3' }), refused('quorum', /^--quorum 3 is more than --replicas 2/));
  assert.throws(() => putPolicy({ ec: '4+2', quorum: '2' }), refused('ec', /^--ec stores shards instead of copies/));
  assert.throws(() => putPolicy({ ec: '3' }), refused('ec', /^--ec 3 is not data\+parity shards/));
});
