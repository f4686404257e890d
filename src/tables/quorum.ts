/**
 * The one place this layer waits for a quorum: call every target at once, resolve as soon as
 * `need` answered, fail as soon as that can no longer happen. Answers that arrive after the quorum
 * go to `onLate` (read repair uses them). Kept to this one function so a shared quorum helper can
 * replace it without touching the callers.
 */
import { unavailable } from '../errors.js';

export interface QuorumResult<T> {
  readonly ok: ReadonlyArray<{ nodeId: string; value: T }>;
  readonly failed: ReadonlyArray<{ nodeId: string; error: unknown }>;
}

export function quorum<T>(
  targets: readonly string[],
  need: number,
  call: (nodeId: string) => Promise<T>,
  what: string,
  onLate?: (nodeId: string, value: T) => void,
): Promise<QuorumResult<T>> {
  return new Promise((resolve, reject) => {
    const ok: { nodeId: string; value: T }[] = [];
    const failed: { nodeId: string; error: unknown }[] = [];
    let settled = false;
    if (need <= 0) {
      settled = true;
      resolve({ ok, failed });
    } else if (targets.length < need) {
      reject(unavailable(`${what} needs ${need} replicas but only ${targets.length} full nodes are live`));
      return;
    }
    for (const id of targets) {
      call(id).then(
        (value) => {
          if (settled) return onLate?.(id, value);
          ok.push({ nodeId: id, value });
          if (ok.length >= need) {
            settled = true;
            resolve({ ok: [...ok], failed: [...failed] });
          }
        },
        (error: unknown) => {
          failed.push({ nodeId: id, error });
          if (!settled && targets.length - failed.length < need) {
            settled = true;
            const why = failed.map((f) => `${f.nodeId.slice(0, 12)}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('; ');
            reject(unavailable(`${what} reached ${ok.length} of the ${need} replicas it needs (${why})`, { ok: ok.length, need }));
          }
        },
      );
    }
  });
}
