/**
 * Pulls what a node may have missed while it was down or cut off: file tombstones (so it deletes
 * the chunks of files removed meanwhile). Names are objects now, kept by the table layer's own
 * anti-entropy. It runs when a peer comes alive, which
 * is exactly when a returning node meets the others, and on a slow timer besides.
 */
import type { Logger } from '../log.js';
import { MAX_LIST_PAGE_RECORDS, MAX_LIST_PAGES, CONTROL_CALL_TIMEOUT_MS } from './limits.js';
import { errorMessage } from './errors.js';
import type { ChunkHost } from './chunk-host.js';
import type { Peers } from './peers.js';
import type { AuthorityGate } from './authority-gate.js';
import { FILE_METHODS, parseReply, replies } from './rpc.js';

export class AntiEntropy {
  readonly #running = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  pulls = 0;

  constructor(
    private readonly peers: Peers,
    private readonly host: ChunkHost,
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly gate: AuthorityGate,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      const others = this.peers.live().filter((n) => n.nodeId !== this.peers.selfId);
      const pick = others[Math.floor(Math.random() * others.length)];
      if (pick) void this.pull(pick.nodeId);
    }, this.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.allSettled([...this.#running.values()]);
  }

  /** One full pull from one peer; concurrent requests for the same peer share it. */
  pull(node: string): Promise<void> {
    let p = this.#running.get(node);
    if (p) return p;
    p = this.#pull(node)
      .catch((err: unknown) => {
        if (!this.#stopped) this.log.debug({ node, err: errorMessage(err) }, 'anti-entropy pull failed; the next one will retry');
      })
      .finally(() => this.#running.delete(node));
    this.#running.set(node, p);
    return p;
  }

  async #pull(node: string): Promise<void> {
    let after: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES && !this.#stopped; page++) {
      const r = await this.peers.call(node, FILE_METHODS.fileTombstones, { ...(after ? { after } : {}), limit: MAX_LIST_PAGE_RECORDS }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
      const { items, more } = parseReply(replies.tombstones, r.body, node);
      // A page that carries an unproven tombstone is not thrown away whole: the proven ones still apply.
      for (const t of items) await this.#applyTombstone(t, node);
      const last = items[items.length - 1];
      if (!more || !last) break;
      after = last.root;
    }
    this.pulls++;
  }

  async #applyTombstone(t: { root: string; at: number; proof?: Buffer | undefined }, node: string): Promise<void> {
    try {
      this.gate.tombstone(t, node);
    } catch {
      return; // refused and logged by the gate
    }
    await this.host.tombstone(t);
  }
}
