/**
 * A sealing worker (seal-pool.ts): holds copies of the volumes' sealers and seals or opens the
 * runs it is sent in place, sending each buffer back by transfer. A job that throws answers with
 * its error; the master fails that request and nothing else.
 */
import { parentPort } from 'node:worker_threads';
import { SectorSealer } from './seal.js';
import type { PoolReply, PoolRequest } from './seal-pool.js';

const port = parentPort;
if (port === null) throw new Error('seal-worker.ts runs only as a worker thread of a SealPool');
const sealers = new Map<number, SectorSealer>();

port.on('message', (m: PoolRequest) => {
  if (m.kind === 'add') {
    sealers.set(m.sealer, new SectorSealer(Buffer.from(m.spec.key), m.spec.volumeId, m.spec.nonceRandom));
    return;
  }
  if (m.kind === 'forget') {
    sealers.delete(m.sealer);
    return;
  }
  let reply: PoolReply;
  try {
    const s = sealers.get(m.sealer);
    if (s === undefined) throw new Error(`no sealer ${m.sealer} in this worker`);
    const buf = Buffer.from(m.buf);
    if (m.kind === 'seal') {
      s.sealInPlace(buf, m.firstSector, m.firstVersion, m.n);
      reply = { job: m.job, buf: m.buf };
    } else {
      const versions = new Float64Array(m.n);
      s.openInPlace(buf, m.firstSector, m.n, versions);
      reply = { job: m.job, buf: m.buf, versions };
    }
  } catch (e) {
    port.postMessage({ job: m.job, error: e instanceof Error ? e.message : String(e) } satisfies PoolReply);
    return;
  }
  port.postMessage(reply, [reply.buf, ...(reply.versions ? [reply.versions.buffer as ArrayBuffer] : [])]);
});
