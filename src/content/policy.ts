/**
 * A file's redundancy policy: whole-chunk replicas with a write quorum, or Reed–Solomon shards.
 * It travels inside manifests and name records, so it is validated wherever it is decoded.
 */
import { z } from 'zod';
import { badInput } from '../errors.js';
import { MAX_REPLICAS } from '../limits.js';
import { majorityQuorum } from './majority.js';
import { MAX_EC_DATA_SHARDS, MAX_EC_PARITY_SHARDS, MAX_EC_SHARDS } from './erasure-limits.js';
import { DEFAULT_REPLICAS } from './put-policy.js';

export { MAX_REPLICAS, majorityQuorum };

export type RedundancyPolicy = { kind: 'replicas'; r: number; w: number } | { kind: 'ec'; k: number; m: number };

export const DEFAULT_POLICY: RedundancyPolicy = Object.freeze({ kind: 'replicas', r: DEFAULT_REPLICAS, w: majorityQuorum(DEFAULT_REPLICAS) });

export const policySchema: z.ZodType<RedundancyPolicy, z.ZodTypeDef, unknown> = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('replicas'), r: z.number().int().min(1).max(MAX_REPLICAS), w: z.number().int().min(1) }).strict(),
    z
      .object({
        kind: z.literal('ec'),
        k: z.number().int().min(1).max(MAX_EC_DATA_SHARDS),
        m: z.number().int().min(1).max(MAX_EC_PARITY_SHARDS),
      })
      .strict(),
  ])
  .superRefine((p, ctx) => {
    if (p.kind === 'replicas' && p.w > p.r) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['w'], message: 'write quorum w must not exceed the replica count r' });
    }
    if (p.kind === 'ec' && p.k + p.m > MAX_EC_SHARDS) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['m'], message: `k + m must be at most ${MAX_EC_SHARDS}` });
    }
  });

/** Validates a policy from any source; BAD_INPUT names the first problem found. */
export function checkPolicy(value: unknown): RedundancyPolicy {
  const parsed = policySchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw badInput(`bad redundancy policy: ${where}${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Parses the CLI forms `3` (replicas, majority quorum) and `4+2` (erasure coding). */
export function parsePolicy(text: string): RedundancyPolicy {
  const ec = /^(\d{1,2})\+(\d{1,2})$/.exec(text);
  if (ec) return checkPolicy({ kind: 'ec', k: Number(ec[1]), m: Number(ec[2]) });
  if (/^\d{1,2}$/.test(text)) {
    const r = Number(text);
    return checkPolicy({ kind: 'replicas', r, w: majorityQuorum(r) });
  }
  throw badInput(`bad redundancy '${text}': use a replica count such as 3, or data+parity shards such as 4+2`);
}

/** A policy as the API and the CLI show it: `replicas:3/2` (R copies, write quorum W) or `ec:4+2`. */
export function formatPolicy(p: RedundancyPolicy): string {
  return p.kind === 'replicas' ? `replicas:${p.r}/${p.w}` : `ec:${p.k}+${p.m}`;
}
