/**
 * When a request that failed on its way to a node may be sent again: the rule that makes
 * keep-alive connections safe. A node closes an idle kept-alive connection after its
 * keepAliveTimeout; a request written on it at that moment meets a reset before any answer
 * (the keep-alive close race). Such a request never reached the node's handler, so it is sent
 * once more on a new connection. A request the node may have acted on is resent only when
 * doing it twice has the effect of doing it once.
 */

/** Methods whose repetition has the effect of one request (RFC 9110 §9.2.2). */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** Errors that say the connection broke, not that the node answered or refused to listen. */
const BROKEN_CONNECTION_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** A request is sent at most this many more times, and each resend goes on a new connection. */
export const MAX_RESENDS = 1;

/** What is known about one failed attempt when its error arrives. */
export interface FailedAttempt {
  method: string;
  /** The node:net error code, if any (node:http gives 'socket hang up' the code ECONNRESET). */
  code: string | undefined;
  /** The attempt went out on a kept-alive connection that had carried an earlier exchange. */
  reusedSocket: boolean;
  /** Any byte of an answer arrived for this attempt (the node read the request, at least). */
  answerStarted: boolean;
  /** The body can be written again (a buffer, not a stream already consumed). */
  replayable: boolean;
  /** Resends already made for this request. */
  resends: number;
}

export function mayResend(a: FailedAttempt): boolean {
  if (a.resends >= MAX_RESENDS || !a.replayable || a.answerStarted) return false;
  if (a.code === undefined || !BROKEN_CONNECTION_CODES.has(a.code)) return false;
  // On a reused connection with no answer at all, the reset is the close race: the node shut the
  // connection without reading the request. On a new one the node may have read and acted on it.
  return a.reusedSocket || IDEMPOTENT_METHODS.has(a.method.toUpperCase());
}
