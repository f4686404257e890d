/**
 * The head of an HTTP/1.1 response, parsed from bytes a node sent: what the download path needs
 * (status, headers) and nothing more, bounded so a misbehaving peer cannot make the client
 * buffer or loop without end. Pure: no I/O.
 */
import { TesseraError } from '../errors.js';

/** Longest response head accepted; the API's heads are a few hundred bytes. */
export const MAX_RESPONSE_HEAD_BYTES = 16 << 10;
/** Most header lines accepted in one head. */
export const MAX_RESPONSE_HEADERS = 100;

export interface ResponseHead {
  status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Map<string, string>;
  /** Bytes the head took, its blank line included: the body starts here. */
  length: number;
}

const END = Buffer.from('\r\n\r\n');

const protocol = (what: string) => new TesseraError('PROTOCOL', `the node API sent a malformed HTTP response: ${what}`);

/**
 * Parses the head at the start of `bytes`. Returns undefined while the head is incomplete (read
 * more and call again); throws a PROTOCOL error for a head that is malformed or too long.
 */
export function parseResponseHead(bytes: Buffer): ResponseHead | undefined {
  const end = bytes.subarray(0, MAX_RESPONSE_HEAD_BYTES).indexOf(END);
  if (end < 0) {
    if (bytes.length >= MAX_RESPONSE_HEAD_BYTES) throw protocol(`no end of the head within ${MAX_RESPONSE_HEAD_BYTES} bytes`);
    return undefined;
  }
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] as string);
  if (!m) throw protocol(`status line '${(lines[0] as string).slice(0, 40)}'`);
  if (lines.length - 1 > MAX_RESPONSE_HEADERS) throw protocol(`more than ${MAX_RESPONSE_HEADERS} header lines`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon))) throw protocol(`header line '${line.slice(0, 40)}'`);
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), headers, length: end + END.length };
}

/** The body's length from Content-Length; a body framed any other way is refused. */
export function bodyLength(head: ResponseHead): number {
  if (head.headers.has('transfer-encoding')) throw protocol('a body in chunked encoding, where a Content-Length was expected');
  const text = head.headers.get('content-length');
  if (text === undefined || !/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw protocol(`Content-Length '${(text ?? '(none)').slice(0, 20)}'`);
  }
  return Number(text);
}
