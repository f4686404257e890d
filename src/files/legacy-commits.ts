/**
 * Commits and references stored before commits carried proofs hold no proof, so repair could not
 * hand them on and no holder would accept them. A full node (it holds the data key) proves the
 * ones it holds itself, once, in the background after it starts: these records were accepted under
 * the rules of their day, and the node vouches for what it already keeps, nothing it is sent.
 * Storage-only nodes cannot; they keep their unproven records as they are (nothing is collected),
 * but never accept new ones from the network.
 */
import type { AuthoritySigner } from '../content/index.js';
import type { Logger } from '../log.js';
import type { Metadata } from '../store/index.js';
import type { RefStore } from './refs.js';
import { REF_TXN_BATCH } from './limits.js';

const STATE_TABLE = 'legacy-commits';
const DONE_KEY = 'proven';

/** Proves every unproven commit and reference held here; returns how many it proved of each. */
export async function proveLegacyCommits(refs: RefStore, meta: Metadata, signer: AuthoritySigner, log: Logger, stopped: () => boolean): Promise<{ commits: number; pins: number }> {
  meta.table(STATE_TABLE);
  const proved = { commits: 0, pins: 0 };
  if (meta.get<boolean>(STATE_TABLE, DONE_KEY) === true) return proved;
  let after: string | undefined;
  for (;;) {
    if (stopped()) return proved;
    const page = refs.unproven(after, REF_TXN_BATCH);
    if (page.length === 0) break;
    for (const u of page) {
      const proof = u.commit ? signer.prove({ kind: 'commit', upload: u.upload, root: u.root, at: u.at }) : undefined;
      const pins = u.chunks.map((hex) => ({ hex, pin: signer.prove({ kind: 'pin', upload: u.upload, chunk: Buffer.from(hex, 'hex') }) }));
      await refs.addProofs(u.upload, proof, pins);
      proved.commits += proof ? 1 : 0;
      proved.pins += pins.length;
    }
    // An upload listed with a full page of chunks may hold more: the next page starts again before it.
    const last = page[page.length - 1]!;
    after = last.chunks.length < REF_TXN_BATCH ? last.upload : page[page.length - 2]?.upload;
    // Other work runs between pages.
    await new Promise((r) => setImmediate(r));
  }
  await meta.put(STATE_TABLE, DONE_KEY, true);
  if (proved.commits + proved.pins > 0) log.info(proved, 'proved commits and references stored before commits carried proofs');
  return proved;
}
