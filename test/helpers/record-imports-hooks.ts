/**
 * Module loader hooks that append the URL of every module loaded through `import` to the file
 * named by TESSERA_RECORD_IMPORTS. Registered by record-imports.ts; they run on the loader's own
 * thread, so they write the file synchronously rather than talk back to the process.
 */
import { appendFileSync } from 'node:fs';

const out = process.env.TESSERA_RECORD_IMPORTS;

export async function load(url: string, context: unknown, next: (url: string, context: unknown) => Promise<unknown>): Promise<unknown> {
  if (out) appendFileSync(out, url + '\n');
  return next(url, context);
}
