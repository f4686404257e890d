import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../../bench/files.js';

test('bench files: a round count outside 1..20 is refused before anything starts', async () => {
  for (const bad of ['0', '21', '1.5', 'many']) {
    await assert.rejects(main(['--rounds', bad, '--json']), /--rounds must be 1\.\.20/, `--rounds ${bad}`);
  }
});
