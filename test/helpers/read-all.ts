/** Reads a whole file through the typed client: for tests comparing what was stored with what reads back. */
import type { TesseraClient } from '../../src/client/index.js';

export async function readAll(client: TesseraClient, ref: string): Promise<Buffer> {
  const { stream } = await client.get(ref);
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}
