/**
 * The web dashboard in real headless Chromium against a 3-node cluster of real processes: the
 * member table, uploads (refused without the token, accepted with it), download byte for byte,
 * delete, and a killed node turning dead on the page through the live event stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { chromium, type Browser, type Page } from 'playwright-core';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { defaultZone } from '../../src/cluster/zone.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
/** Failure detection with the timing above takes a few seconds; the page adds at most one event interval. */
const DEAD_WITHIN_MS = 10_000;
const UI_TIMEOUT_MS = 20_000;
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

/** Decodes a PNG's pixel rows far enough to tell a rendered page from a blank one. */
function pngStats(png: Buffer): { width: number; height: number; distinctBytes: number; nonZeroFraction: number } {
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG', 'a PNG file');
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (off + 8 <= png.length) {
    const len = png.readUInt32BE(off);
    const type = png.subarray(off + 4, off + 8).toString('latin1');
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  // Filtered scanlines: a uniform image filters to almost nothing but zeros.
  const raw = inflateSync(Buffer.concat(idat));
  const seen = new Set<number>();
  let nonZero = 0;
  for (const b of raw) {
    seen.add(b);
    if (b !== 0) nonZero++;
  }
  return { width, height, distinctBytes: seen.size, nonZeroFraction: nonZero / raw.length };
}

async function count(page: Page, selector: string): Promise<number> {
  return page.locator(selector).count();
}

test('dashboard: members, upload, download, delete and a node turning dead, in headless Chromium', { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium)` }, async (t) => {
  // The page is opened without a token first: reads stay open on this loopback API.
  const cluster = await LocalCluster.create({ nodes: 3, memory: true, nodeArgs: [...TIMING, '--api-open-reads'], logLevel: 'warn' });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 }, 20_000);

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused upload is logged by the browser as a failed resource load; everything else is a defect.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(UI_TIMEOUT_MS);

  const n0 = cluster.node(0);
  await page.goto(`http://${n0.api}/`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=member-row][data-state=alive]').length === 3);
  const ids = await page.locator('[data-testid=member-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-node-id')));
  assert.deepEqual([...ids].sort(), cluster.nodes.map((n) => n.nodeId).sort(), 'the page lists the three nodes');
  // Nodes that name no zone share the host's, and the table says which.
  assert.deepEqual(await page.locator('[data-testid=member-zone]').allTextContents(), cluster.nodes.map(() => defaultZone()));
  assert.equal(await page.locator('[data-testid=conn]').getAttribute('data-state'), 'live');

  // Without the token, the upload is refused and the page says how to fix it.
  const content = randomBytes(300_000 + Math.floor(Math.random() * 1000));
  await page.setInputFiles('[data-testid=upload-input]', { name: 'notes.bin', mimeType: 'application/octet-stream', buffer: content });
  await page.waitForSelector('[data-testid=toast]:has-text("API token")');
  assert.equal(await count(page, '[data-testid=file-row]'), 0);

  await page.click('[data-testid=token-button]');
  await page.fill('[data-testid=token-input]', n0.apiToken);
  await page.press('[data-testid=token-input]', 'Enter');
  await page.waitForSelector('[data-testid=token-button]:has-text("Token set")');
  assert.equal(await page.evaluate(() => localStorage.getItem('tessera.apiToken')), n0.apiToken, 'the token is kept in the page storage');

  await page.setInputFiles('[data-testid=upload-input]', { name: 'notes.bin', mimeType: 'application/octet-stream', buffer: content });
  const row = page.locator('[data-testid=file-row][data-name="notes.bin"]');
  await row.waitFor();
  const listed = (await n0.client.ls()).files.find((f) => f.name === 'notes.bin');
  assert.equal(listed?.size, content.length, 'the cluster has the file under its name');

  // A second file, to check the search box narrows the list.
  await page.setInputFiles('[data-testid=upload-input]', { name: 'other.txt', mimeType: 'text/plain', buffer: Buffer.from('other file\n') });
  await page.locator('[data-testid=file-row][data-name="other.txt"]').waitFor();
  await page.fill('[data-testid=file-search]', 'NOTES');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=file-row]').length === 1);
  assert.equal(await count(page, '[data-testid=file-row][data-name="notes.bin"]'), 1);
  await page.fill('[data-testid=file-search]', '');

  const [download] = await Promise.all([page.waitForEvent('download'), row.locator('[data-testid=download]').click()]);
  assert.equal(download.suggestedFilename(), 'notes.bin');
  const got = await readFile(await download.path());
  assert.ok(got.equals(content), `downloaded ${got.length} bytes equal the ${content.length} uploaded`);

  await mkdir(ARTIFACTS, { recursive: true });
  const shot = await page.screenshot({ fullPage: true });
  await writeFile(join(ARTIFACTS, 'dashboard.png'), shot);
  const stats = pngStats(shot);
  t.diagnostic(`screenshot ${stats.width}x${stats.height}, ${shot.length} bytes, ${stats.distinctBytes} distinct filtered byte values`);
  assert.ok(stats.width >= 1280 && stats.height >= 600, 'a full-page screenshot');
  assert.ok(shot.length > 20_000 && stats.distinctBytes > 64 && stats.nonZeroFraction > 0.01, 'the screenshot is not blank');

  await row.locator('[data-testid=delete]').click();
  await row.locator('[data-testid=confirm-delete]').click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await n0.client.ls()).files.some((f) => f.name === 'notes.bin'), false, 'the file is gone from the cluster');

  const victim = cluster.node(2);
  await cluster.kill(2, 'SIGKILL');
  await page.waitForSelector(`[data-testid=member-row][data-node-id="${victim.nodeId}"][data-state=dead]`, { timeout: DEAD_WITHIN_MS });
  assert.equal(await count(page, '[data-testid=member-row][data-state=alive]'), 2);
  await writeFile(join(ARTIFACTS, 'dashboard-dead-node.png'), await page.screenshot({ fullPage: true }));

  assert.deepEqual(problems, [], 'no script errors or CSP violations on the page');
});
