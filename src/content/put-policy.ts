/**
 * Put's redundancy rules, in one place: the CLI, the API and the files service call them, each
 * naming the fields as its caller knows them (flags, query parameters). Free of the schema library
 * and of the native coder, so the command line can check its flags before it loads either.
 */
import { badInput } from '../errors.js';
import { MAX_REPLICAS } from '../limits.js';
import { checkErasureParams } from './erasure-limits.js';
import { majorityQuorum } from './majority.js';
import type { RedundancyPolicy } from './policy.js';

/** Copies a put makes when neither it nor the node names a count. */
export const DEFAULT_REPLICAS = 3;

/** What a put asks for; each part may be left out. */
export interface PutRedundancy {
  replicas?: number;
  quorum?: number;
  ec?: { k: number; m: number };
}

export type PutPolicyField = keyof PutRedundancy;
/** How a boundary names the fields in its messages; a refusal also carries the field in `details.field`. */
export type PutPolicyNames = Readonly<Record<PutPolicyField, string>>;
/** The API's query parameters, and the service's options. */
export const PUT_POLICY_PARAMS: PutPolicyNames = { replicas: 'replicas', quorum: 'quorum', ec: 'ec' };

/** The `data+parity` form of erasure coding, two digits each at most. */
const SHARDS_FORM = /^(\d{1,2})\+(\d{1,2})$/;
/** Characters of a refused value echoed back. */
const ECHO_CHARS = 20;

const refuse = (field: PutPolicyField, message: string) => badInput(message, { field });
const whole = (n: number, min: number, max: number) => Number.isSafeInteger(n) && n >= min && n <= max;

/** Parses erasure coding written as data+parity shards (`4+2`); the counts are checked by checkPutPolicy. */
export function parseShards(text: string, names: PutPolicyNames = PUT_POLICY_PARAMS): { k: number; m: number } {
  const form = SHARDS_FORM.exec(text);
  if (!form) throw refuse('ec', `${names.ec} ${text.slice(0, ECHO_CHARS)} is not data+parity shards such as 4+2 or 10+4`);
  return { k: Number(form[1]), m: Number(form[2]) };
}

/**
 * The rules a put's request must keep on its own, before any default applies: copies and shards
 * exclude each other, counts stay in range, and a write never waits for more copies than it makes.
 */
export function checkPutPolicy(req: PutRedundancy, names: PutPolicyNames = PUT_POLICY_PARAMS): PutRedundancy {
  const { replicas, quorum, ec } = req;
  if (ec !== undefined) {
    if (replicas !== undefined || quorum !== undefined) throw refuse('ec', `${names.ec} stores shards instead of copies: give it without ${names.replicas} or ${names.quorum}`);
    try {
      checkErasureParams(ec.k, ec.m);
    } catch (e) {
      throw refuse('ec', `${names.ec} ${ec.k}+${ec.m}: ${(e as Error).message}`);
    }
  }
  if (replicas !== undefined && !whole(replicas, 1, MAX_REPLICAS)) throw refuse('replicas', `${names.replicas} must be a whole number from 1 to ${MAX_REPLICAS}, not ${replicas}`);
  if (quorum !== undefined && !whole(quorum, 1, MAX_REPLICAS)) throw refuse('quorum', `${names.quorum} must be a whole number from 1 to ${MAX_REPLICAS}, not ${quorum}`);
  if (replicas !== undefined && quorum !== undefined && quorum > replicas) {
    throw refuse('quorum', `${names.quorum} ${quorum} is more than ${names.replicas} ${replicas}: a write cannot wait for more copies than it makes`);
  }
  return req;
}

/**
 * The policy a put gets: its own request (checked by checkPutPolicy), the rest from the node's
 * default. A put that names neither copies nor shards gets the default; a quorum alone keeps the
 * default replica count, and replicas alone get a majority quorum.
 */
export function resolvePutPolicy(req: PutRedundancy, fallback: RedundancyPolicy, names: PutPolicyNames = PUT_POLICY_PARAMS): RedundancyPolicy {
  checkPutPolicy(req, names);
  if (req.ec !== undefined) return { kind: 'ec', k: req.ec.k, m: req.ec.m };
  const r = req.replicas ?? (fallback.kind === 'replicas' ? fallback.r : DEFAULT_REPLICAS);
  const w = req.quorum ?? majorityQuorum(r);
  if (w > r) throw refuse('quorum', `${names.quorum} ${w} is more than the ${r} replicas this node makes by default: give ${names.replicas} too`);
  // A node that codes by default keeps coding unless the put asks for copies.
  if (req.replicas === undefined && fallback.kind === 'ec') return { kind: 'ec', k: fallback.k, m: fallback.m };
  return { kind: 'replicas', r, w };
}
