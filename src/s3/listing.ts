/**
 * Listing with a delimiter: walks a bucket's keys in order from a start point and folds every key
 * that has the delimiter after the prefix into one common prefix, as S3's ListObjects does. The
 * object service is asked for pages, and a common prefix is skipped over in one step where the
 * key length allows, so a "directory" of a million keys costs one page, not a million keys.
 */
import type { ObjectEntry, Page } from '../tables/index.js';

/** Keys (and common prefixes) one listing response carries at most, as S3. */
export const MAX_LIST_KEYS = 1000;
/** Pages of the object table one listing request reads at most; past it the answer is truncated where it got to. */
export const MAX_LIST_PAGES = 64;
const LIST_PAGE = 1000;
/** The highest code point: appended to a common prefix, it sorts after every key inside it but the pathological. */
const PAST = '\u{10FFFF}';
const MAX_KEY_BYTES = 1024;

export interface ListRequest {
  prefix: string;
  delimiter: string;
  /** List keys strictly after this one (marker, start-after, or a continuation). */
  after: string;
  maxKeys: number;
}

export interface ListResult {
  contents: ObjectEntry[];
  commonPrefixes: string[];
  truncated: boolean;
  /** Where the next page starts (the last key or common prefix given). */
  next: string | undefined;
}

export type PageSource = (opts: { prefix?: string; after?: string; limit: number }) => Promise<Page<ObjectEntry>>;

export async function listKeys(source: PageSource, r: ListRequest): Promise<ListResult> {
  if (r.maxKeys === 0) return { contents: [], commonPrefixes: [], truncated: false, next: undefined };
  const contents: ObjectEntry[] = [];
  const commonPrefixes: string[] = [];
  let after = r.after;
  let last: string | undefined;
  let pages = 0;
  let lastPrefix: string | undefined;
  // Continuing after a common prefix: none of the keys inside it may come back.
  const rest = after.startsWith(r.prefix) ? after.slice(r.prefix.length) : '';
  if (r.delimiter !== '' && rest.endsWith(r.delimiter) && rest.indexOf(r.delimiter) === rest.length - r.delimiter.length) {
    lastPrefix = after;
    if (Buffer.byteLength(after) + 4 <= MAX_KEY_BYTES) after += PAST;
  }
  const full = () => contents.length + commonPrefixes.length >= r.maxKeys;
  while (pages < MAX_LIST_PAGES) {
    pages++;
    const page = await source({ ...(r.prefix ? { prefix: r.prefix } : {}), ...(after !== '' ? { after } : {}), limit: LIST_PAGE });
    let jumped = false;
    for (const e of page.items) {
      if (!e.key.startsWith(r.prefix) || (after !== '' && e.key <= after)) continue;
      const rest = e.key.slice(r.prefix.length);
      const d = r.delimiter === '' ? -1 : rest.indexOf(r.delimiter);
      if (d >= 0) {
        const cp = r.prefix + rest.slice(0, d + r.delimiter.length);
        if (cp === lastPrefix) continue;
        if (full()) return { contents, commonPrefixes, truncated: true, next: last };
        commonPrefixes.push(cp);
        lastPrefix = cp;
        last = cp;
        if (Buffer.byteLength(cp) + 4 <= MAX_KEY_BYTES) {
          after = cp + PAST;
          jumped = true;
          break;
        }
        continue;
      }
      if (full()) return { contents, commonPrefixes, truncated: true, next: last };
      contents.push(e);
      last = e.key;
    }
    if (jumped) continue;
    if (page.token === null || page.items.length === 0) return { contents, commonPrefixes, truncated: false, next: undefined };
    after = page.items[page.items.length - 1]!.key;
  }
  // Read as much as one request may: say truncated, and continue from the last key read.
  return { contents, commonPrefixes, truncated: true, next: last ?? after };
}
