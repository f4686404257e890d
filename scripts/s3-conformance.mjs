#!/usr/bin/env node
/**
 * Runs the core list of ceph/s3-tests against a local cluster of real tessera nodes, exactly as
 * shared/conformance/README.md says: the suite is copied to a temporary directory (the shared copy
 * is read-only and is never edited), configured for three access keys made with
 * `tessera s3 key create`, and run with Debian's python3 and pytest. Prints passed / failed /
 * skipped, each failure with its first line of reason, and exits 1 when the pass rate is below
 * --min-pass (percent).
 *
 *   node scripts/s3-conformance.mjs [--suite DIR] [--list FILE] [--min-pass 90] [--only NAME,...] [--json OUT]
 *
 * Needs `npm run build` first (it drives dist/).
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
/** Pass rate (percent of the list) below which the run fails; raise it as the endpoint improves. */
const DEFAULT_MIN_PASS = 95;
/** The whole run is bounded (S3_TESTS_TIMEOUT_MS): a hung request must not hold CI; tests not reached count as not run. */
const RUN_TIMEOUT_MS = Number(process.env.S3_TESTS_TIMEOUT_MS ?? 25 * 60_000);

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const suiteDir = resolve(arg('suite', join(root, '..', 'shared', 'conformance', 's3-tests')));
const listFile = resolve(arg('list', join(suiteDir, '..', 's3-tests-core.txt')));
const minPass = Number(arg('min-pass', String(DEFAULT_MIN_PASS)));
const only = arg('only', '');
const jsonOut = arg('json', '');

if (!existsSync(suiteDir) || !existsSync(listFile)) {
  console.error(`s3-conformance: the suite (${suiteDir}) or its list (${listFile}) is missing; pass --suite and --list`);
  process.exit(2);
}

const { startS3Cluster } = await import(join(root, 'dist', 'test', 'helpers', 's3-cluster.js'));

function parseJunit(xml) {
  const results = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m; (m = re.exec(xml)) !== null; ) {
    const name = /\bname="([^"]*)"/.exec(m[1])?.[1] ?? '?';
    const body = m[3] ?? '';
    let outcome = 'passed';
    let reason = '';
    const f = /<(failure|error)\b[^>]*?message="([^"]*)"/.exec(body) ?? /<(failure|error)\b/.exec(body);
    const s = /<skipped\b[^>]*?message="([^"]*)"/.exec(body) ?? /<skipped\b/.exec(body);
    if (f) {
      outcome = f[1] === 'error' ? 'error' : 'failed';
      reason = f[2] ?? '';
    } else if (s) {
      outcome = 'skipped';
      reason = s[1] ?? '';
    }
    const unescape = (t) => t.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#10;/g, ' ').replace(/&amp;/g, '&');
    results.push({ name, outcome, reason: unescape(reason).replace(/\s+/g, ' ').slice(0, 300) });
  }
  return results;
}

const work = await mkdtemp(join(tmpdir(), 'tessera-s3-tests-'));
const cluster = await startS3Cluster({ nodes: 3, memory: true });
let code = 1;
try {
  const keys = [];
  for (const name of ['main', 'alt', 'tenant']) keys.push(await cluster.createKey(`s3-tests-${name}`));
  const suite = join(work, 's3-tests');
  await cp(suiteDir, suite, { recursive: true });
  // Owners and initiators are shown as the key's id and name, so user_id and display_name are those.
  const section = (title, k, extra = '') =>
    `[s3 ${title}]\ndisplay_name = ${k.name}\nuser_id = ${k.accessKeyId}\nemail = ${title}@example.com\napi_name = default\naccess_key = ${k.accessKeyId}\nsecret_key = ${k.secretKey}\n${extra}\n`;
  const sample = await readFile(join(suiteDir, 's3tests.conf.SAMPLE'), 'utf8');
  // Sections the suite reads but tessera does not use keep their sample values.
  const rest = sample.slice(sample.indexOf('#following section needs to be added for all sts-tests'));
  const conf = [
    `[DEFAULT]\nhost = ${cluster.host}\nport = ${cluster.port}\nis_secure = False\nssl_verify = False\n`,
    `[fixtures]\nbucket prefix = tsr-{random}-\niam name prefix = s3-tests-\niam path prefix = /s3-tests/\n`,
    section('main', keys[0]),
    section('alt', keys[1]),
    section('tenant', keys[2], 'tenant = testx\n'),
    rest,
  ].join('\n');
  const confPath = join(work, 's3tests.conf');
  await writeFile(confPath, conf);
  const names = (await readFile(listFile, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const chosen = only ? names.filter((n) => only.split(',').includes(n)) : names;
  const junit = join(work, 'report.xml');
  const args = ['-m', 'pytest', '-v', '-rfE', '-p', 'no:cacheprovider', `--junitxml=${junit}`, ...chosen.map((n) => `s3tests/functional/test_s3.py::${n}`)];
  const started = Date.now();
  const progress = new Map();
  const reasons = new Map();
  const exit = await new Promise((done) => {
    const p = spawn('/usr/bin/python3', args, { cwd: suite, env: { ...process.env, S3TEST_CONF: confPath }, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    let line = '';
    const keep = (b) => {
      const text = b.toString('utf8');
      tail = (tail + text).slice(-20_000);
      // -v prints one line per test as it ends: kept, so a run cut short still reports what ran.
      line += text;
      let nl;
      while ((nl = line.indexOf('\n')) >= 0) {
        const m = /::(test_\w+) (PASSED|FAILED|ERROR|SKIPPED)/.exec(line.slice(0, nl));
        if (m) progress.set(m[1], m[2].toLowerCase());
        const f = /^(FAILED|ERROR) \S+::(test_\w+) - (.*)$/.exec(line.slice(0, nl));
        if (f) reasons.set(f[2], f[3]);
        line = line.slice(nl + 1);
      }
    };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    const timer = setTimeout(() => p.kill('SIGKILL'), RUN_TIMEOUT_MS);
    p.on('close', (c, sig) => {
      clearTimeout(timer);
      done({ code: c, sig, tail });
    });
  });
  const seconds = Math.round((Date.now() - started) / 1000);
  const results = existsSync(junit)
    ? parseJunit(await readFile(junit, 'utf8'))
    : [...progress].map(([name, outcome]) => ({ name, outcome: outcome === 'error' ? 'error' : outcome, reason: (reasons.get(name) ?? '').slice(0, 300) }));
  const count = (o) => results.filter((r) => r.outcome === o).length;
  const passed = count('passed');
  const failed = count('failed') + count('error');
  const skipped = count('skipped');
  const notRun = chosen.length - results.length;
  for (const r of results.filter((x) => x.outcome !== 'passed')) console.log(`${r.outcome.toUpperCase().padEnd(7)} ${r.name}: ${r.reason}`);
  const rate = chosen.length === 0 ? 0 : (100 * passed) / chosen.length;
  console.log(`s3-tests core: ${passed} passed, ${failed} failed, ${skipped} skipped${notRun > 0 ? `, ${notRun} not run` : ''} of ${chosen.length} (${rate.toFixed(1)} % passed; threshold ${minPass} %) in ${seconds} s`);
  if (!existsSync(junit)) console.log(`pytest exited ${exit.code ?? exit.sig} without its report (cut short after ${seconds} s?); outcomes above are from its progress lines${results.length === 0 ? `:\n${exit.tail}` : ''}`);
  if (jsonOut) await writeFile(jsonOut, JSON.stringify({ passed, failed, skipped, notRun, total: chosen.length, rate, seconds, results }, null, 2));
  code = rate >= minPass ? 0 : 1;
} finally {
  await cluster.destroy();
  await rm(work, { recursive: true, force: true });
}
process.exit(code);
