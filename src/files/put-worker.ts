/**
 * The put thread (put-thread.ts): seals chunks (convergent encryption into the buffer sent with
 * the plaintext) and keeps the MD5 of bodies being stored. Buffers go back by transfer.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { encryptChunk } from '../content/index.js';
import type { PutThreadReply, PutThreadRequest } from './put-thread.js';

const port = parentPort;
if (port === null) throw new Error('put-worker.ts runs only as the worker thread of put-thread.ts');
const md5s = new Map<number, Hash>();

port.on('message', (m: PutThreadRequest) => {
  if (m.op === 'seal') {
    let reply: PutThreadReply;
    // Before sealing, in the order the jobs came: a body's MD5 sees its chunks in sequence. A body
    // dropped meanwhile (its put failed) is not opened again.
    if (m.md5 !== undefined) md5s.get(m.md5.body)?.update(new Uint8Array(m.plain, m.md5.from, m.len - m.md5.from));
    try {
      const c = encryptChunk(new Uint8Array(m.plain, 0, m.len), new Uint8Array(m.secret), Buffer.from(m.out));
      reply = { op: 'sealed', job: m.job, plain: m.plain, out: m.out, id: c.id.toString('hex'), key: c.key.toString('hex'), size: c.data.length };
    } catch (e) {
      reply = { op: 'sealed', job: m.job, plain: m.plain, out: m.out, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply, [m.plain, m.out]);
  } else if (m.op === 'md5') {
    let h = md5s.get(m.body);
    if (h === undefined) md5s.set(m.body, (h = createHash('md5')));
    h.update(new Uint8Array(m.buf, 0, m.len));
    port.postMessage({ op: 'hashed', job: m.job, buf: m.buf } satisfies PutThreadReply, [m.buf]);
  } else if (m.op === 'md5-digest') {
    const d = (md5s.get(m.body) ?? createHash('md5')).digest('hex');
    md5s.delete(m.body);
    port.postMessage({ op: 'digest', job: m.job, digest: d } satisfies PutThreadReply);
  } else if (m.op === 'md5-drop') {
    md5s.delete(m.body);
  }
});
