import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { MAX_REFUSAL_LOG_SOURCES, RefusalLog } from '../../../src/net/refusal-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

test('one line per source per interval, counting what it stands for', () => {
  const { logger, lines } = capture();
  let now = 0;
  const r = new RefusalLog(logger, 1000, () => now);
  for (let i = 0; i < 100; i++) r.refused('10.0.0.1', {}, 'refused');
  r.refused('10.0.0.2', {}, 'refused');
  assert.equal(lines.length, 2);
  now = 1000;
  assert.equal(r.refused('10.0.0.1', {}, 'refused'), true);
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.alsoRefusedSinceLastLine, 99);
  assert.equal(lines[2]!.source, '10.0.0.1');
});

test('the table of sources stays bounded', () => {
  const { logger } = capture();
  const r = new RefusalLog(logger, 1000, () => 0);
  for (let i = 0; i < MAX_REFUSAL_LOG_SOURCES + 500; i++) r.refused(`src-${i}`, {}, 'refused');
  assert.equal(r.size, MAX_REFUSAL_LOG_SOURCES);
});
