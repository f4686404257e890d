import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** scripts/ from the repository root, whether the test runs from source or from dist/. */
function script(name: string): string {
  const here = fileURLToPath(import.meta.url);
  const root = here.includes('/dist/') ? join(here, '..', '..', '..', '..', '..') : join(here, '..', '..', '..', '..');
  return join(root, 'scripts', name);
}

function bash(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', args, { timeout: 10_000 }, (err, _out, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }));
  });
}

describe('NBD attach/detach scripts', () => {
  for (const name of ['nbd-attach.sh', 'nbd-detach.sh']) {
    it(`${name} parses (bash -n)`, async () => {
      const r = await bash(['-n', script(name)]);
      assert.equal(r.code, 0, r.stderr);
    });
  }

  it('nbd-attach.sh rejects a bad port and unknown arguments before touching the system', async () => {
    let r = await bash([script('nbd-attach.sh'), '--port', '99999']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not a TCP port/);
    r = await bash([script('nbd-attach.sh'), '--bogus']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown argument '--bogus'/);
    r = await bash([script('nbd-attach.sh'), '--mkfs', 'ext4;rm']);
    assert.match(r.stderr, /not a plain name/);
  });

  it('nbd-detach.sh needs exactly one target', async () => {
    const r = await bash([script('nbd-detach.sh'), 'a', 'b']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exactly one argument/);
  });
});
