import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from '../../../src/log.js';
import { generateCredentials, type NodeCredentials } from '../../../src/net/credentials.js';
import { Transport, type TransportOptions } from '../../../src/net/transport.js';
import type { RequestHandler } from '../../../src/net/types.js';

export const SECRET = Buffer.alloc(32, 0x5a);
export const CLUSTER = 'test-cluster';

/** A logger whose lines can be searched, to check that refusals are logged with a reason. */
export function captureLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return { logger, lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export const echo: RequestHandler = async (req) => ({ body: { method: req.method, body: req.body, from: req.peer.nodeId }, payload: req.payload });

export async function makeNode(
  over: Partial<TransportOptions> & { handler?: RequestHandler; credentials?: NodeCredentials } = {},
): Promise<{ t: Transport; addr: string; creds: NodeCredentials; logs: () => Array<Record<string, unknown>> }> {
  const creds = over.credentials ?? (await generateCredentials());
  const cap = captureLogger();
  const t = new Transport({
    credentials: creds,
    clusterId: CLUSTER,
    clusterSecret: SECRET,
    host: '127.0.0.1',
    port: 0,
    handler: echo,
    logger: cap.logger,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    ...over,
  });
  await t.start();
  return { t, addr: t.listenAddr, creds, logs: cap.lines };
}

/** Polls `cond` every 10 ms for at most `ms`; the bound keeps a broken test from hanging. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}
