/**
 * One handler shape for every service's part of the peer protocol. Each service registers the
 * method prefix it owns ("chunk.", "extent.", "member.", …); the transport and the node's calls
 * to itself both dispatch through the same table, so a local request is validated like a remote one.
 */
import { TesseraError } from '../errors.js';
import type { IncomingRequest, Reply } from './types.js';

export type PeerHandler = (req: IncomingRequest) => Promise<Reply>;

/** What a service needs to register its handlers: nothing else of the node. */
export interface PeerHandlers {
  register(prefix: string, handler: PeerHandler): void;
}

/** A prefix is a lower-case word and a dot, so it can never swallow another service's methods. */
const PREFIX_PATTERN = /^[a-z][a-z0-9-]{0,30}\.$/;

export class PeerRouter implements PeerHandlers {
  readonly #handlers = new Map<string, PeerHandler>();

  register(prefix: string, handler: PeerHandler): void {
    if (!PREFIX_PATTERN.test(prefix)) throw new TesseraError('BAD_INPUT', `peer method prefix '${prefix}' must be a lower-case word ending in '.'`);
    if (this.#handlers.has(prefix)) throw new TesseraError('CONFLICT', `peer method prefix '${prefix}' is registered twice`);
    this.#handlers.set(prefix, handler);
  }

  readonly handle: PeerHandler = async (req) => {
    const dot = req.method.indexOf('.');
    const handler = dot > 0 ? this.#handlers.get(req.method.slice(0, dot + 1)) : undefined;
    if (handler === undefined) throw new TesseraError('BAD_INPUT', `unknown method '${req.method}'`);
    return handler(req);
  };
}
