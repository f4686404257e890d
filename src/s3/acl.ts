/**
 * S3 ACLs as tessera keeps them: a canned ACL per bucket and per object (private, public-read,
 * public-read-write, authenticated-read), shown as S3's AccessControlPolicy document and set from
 * the `x-amz-acl` header or from a document whose grants amount to one of them. Anything finer
 * (grants to other users, x-amz-grant-* headers, the other canned names) is NotImplemented. What a
 * canned ACL grants: READ to everyone (public-*) or to every access key (authenticated-read),
 * never more; writes and ACL changes come only from an access key's own scope. Pure, no I/O.
 */
import { STORED_CANNED_ACLS, type StoredCannedAcl } from '../tables/index.js';
import { S3Error } from './errors.js';
import { el, parseXmlBody, Xml, xmlDocument } from './xml.js';

export type CannedAcl = 'private' | StoredCannedAcl;
export const CANNED_ACLS: readonly CannedAcl[] = ['private', ...STORED_CANNED_ACLS];
/** Canned names S3 defines that tessera does not model (they grant to a bucket owner or a log service). */
const UNSUPPORTED_CANNED = new Set(['aws-exec-read', 'bucket-owner-read', 'bucket-owner-full-control', 'log-delivery-write']);
/** Headers that grant to named users; refused rather than ignored, so no client believes a grant it asked for exists. */
export const GRANT_HEADERS = ['x-amz-grant-read', 'x-amz-grant-write', 'x-amz-grant-read-acp', 'x-amz-grant-write-acp', 'x-amz-grant-full-control'] as const;
/** An AccessControlPolicy body: S3 allows 100 grants; the four canned ACLs need at most three. */
export const MAX_ACL_BODY_BYTES = 64 << 10;
export const MAX_ACL_GRANTS = 100;

export const ALL_USERS_URI = 'http://acs.amazonaws.com/groups/global/AllUsers';
export const AUTHENTICATED_USERS_URI = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

export interface AclOwner {
  readonly id: string;
  readonly name: string;
}

/** The owner of what was written outside S3 (the CLI, the HTTP API) or before owners were kept. */
export const CLUSTER_OWNER: AclOwner = { id: 'tessera', name: 'tessera' };

/** Who asks: no key at all, or an access key (whose own scope did not already allow the read). */
export type Requester = 'anonymous' | 'authenticated';

/** The stored form: private is no field at all, so records written before ACLs read as private. */
export const storedAcl = (acl: CannedAcl): StoredCannedAcl | undefined => (acl === 'private' ? undefined : acl);

/** Whether `acl` lets `who` read (an object's bytes, or a bucket's listing). */
export function aclGrantsRead(acl: StoredCannedAcl | undefined, who: Requester): boolean {
  if (acl === 'public-read' || acl === 'public-read-write') return true;
  return acl === 'authenticated-read' && who === 'authenticated';
}

/** The `x-amz-acl` header's value, checked; undefined when absent. */
export function parseCannedAcl(value: string | undefined): CannedAcl | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if ((CANNED_ACLS as readonly string[]).includes(v)) return v as CannedAcl;
  if (UNSUPPORTED_CANNED.has(v)) throw new S3Error('NotImplemented', `the canned ACL '${v}' is not supported; tessera keeps ${CANNED_ACLS.join(', ')}`);
  throw new S3Error('InvalidArgument', `x-amz-acl '${v.slice(0, 40)}' is not a canned ACL; use one of ${CANNED_ACLS.join(', ')}`);
}

/** The ACL a write asks for through its headers: x-amz-acl, or NotImplemented for per-user grant headers. */
export function aclFromHeaders(headerOf: (name: string) => string | undefined): CannedAcl | undefined {
  const grant = GRANT_HEADERS.find((h) => headerOf(h) !== undefined);
  if (grant !== undefined) throw new S3Error('NotImplemented', `${grant} (a grant to named users) is not supported; use x-amz-acl with one of ${CANNED_ACLS.join(', ')}`);
  return parseCannedAcl(headerOf('x-amz-acl'));
}

const canonical = (o: AclOwner): Xml[] => [el('ID', o.id), el('DisplayName', o.name)];

function grant(grantee: Xml, permission: string): Xml {
  return el('Grant', grantee, el('Permission', permission));
}

/** `<Grantee>` carries its xsi:type as an attribute, which `el` does not write. */
function grantee(type: 'CanonicalUser' | 'Group', ...children: Xml[]): Xml {
  const inner = el('Grantee', ...children).text.slice('<Grantee>'.length);
  return new Xml(`<Grantee xmlns:xsi="${XSI}" xsi:type="${type}">${inner}`);
}

/** The AccessControlPolicy document GetBucketAcl and GetObjectAcl answer. */
export function aclDocument(owner: AclOwner, acl: StoredCannedAcl | undefined): string {
  const grants: Xml[] = [grant(grantee('CanonicalUser', ...canonical(owner)), 'FULL_CONTROL')];
  if (acl === 'public-read' || acl === 'public-read-write') grants.push(grant(grantee('Group', el('URI', ALL_USERS_URI)), 'READ'));
  if (acl === 'public-read-write') grants.push(grant(grantee('Group', el('URI', ALL_USERS_URI)), 'WRITE'));
  if (acl === 'authenticated-read') grants.push(grant(grantee('Group', el('URI', AUTHENTICATED_USERS_URI)), 'READ'));
  return xmlDocument('AccessControlPolicy', el('Owner', ...canonical(owner)), el('AccessControlList', grants));
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v.trim() : undefined);

/** One grant as `who:PERMISSION` (who: owner, all, authenticated); anything else is NotImplemented. */
function grantName(g: unknown, owner: AclOwner, i: number): string {
  const r = (g ?? {}) as Record<string, unknown>;
  const permission = text(r['Permission']) ?? '';
  const who = (r['Grantee'] ?? {}) as Record<string, unknown>;
  if (!['FULL_CONTROL', 'READ', 'WRITE', 'READ_ACP', 'WRITE_ACP'].includes(permission)) throw new S3Error('MalformedACLError', `grant ${i + 1} has no valid <Permission>`);
  const id = text(who['ID']);
  const uri = text(who['URI']);
  if (id !== undefined && uri === undefined && who['EmailAddress'] === undefined) {
    if (id === owner.id) return `owner:${permission}`;
    throw new S3Error('NotImplemented', `grant ${i + 1} names the user '${id.slice(0, 64)}': grants to other users are not supported, only the canned ACLs ${CANNED_ACLS.join(', ')}`);
  }
  if (uri !== undefined && id === undefined) {
    if (uri === ALL_USERS_URI) return `all:${permission}`;
    if (uri === AUTHENTICATED_USERS_URI) return `authenticated:${permission}`;
    throw new S3Error('NotImplemented', `grant ${i + 1} names the group '${uri.slice(0, 80)}', which tessera does not model`);
  }
  throw new S3Error(who['EmailAddress'] !== undefined ? 'NotImplemented' : 'MalformedACLError', `grant ${i + 1} must name its grantee by <ID> or by a group <URI>`);
}

/** The grant sets, owner first, that amount to each canned ACL. */
const CANNED_GRANTS: ReadonlyArray<[CannedAcl, string[]]> = [
  ['private', ['owner:FULL_CONTROL']],
  ['public-read', ['owner:FULL_CONTROL', 'all:READ']],
  ['public-read-write', ['owner:FULL_CONTROL', 'all:READ', 'all:WRITE']],
  ['authenticated-read', ['owner:FULL_CONTROL', 'authenticated:READ']],
];

/**
 * The canned ACL an AccessControlPolicy body amounts to. Bounded before parsing (MAX_ACL_BODY_BYTES,
 * MAX_ACL_GRANTS); the owner, when named, must be the current one (ownership does not move).
 */
export function parseAclDocument(body: Buffer, owner: AclOwner): CannedAcl {
  if (body.length > MAX_ACL_BODY_BYTES) throw new S3Error('MalformedACLError', `the ACL document is ${body.length} bytes, over the ${MAX_ACL_BODY_BYTES}-byte limit`);
  const doc = parseXmlBody(body, 'AccessControlPolicy');
  const ownerId = text((doc['Owner'] as Record<string, unknown> | undefined)?.['ID']);
  if (ownerId !== undefined && ownerId !== owner.id) throw new S3Error('AccessDenied', `the ACL names the owner '${ownerId.slice(0, 64)}'; ownership cannot be changed`);
  const list = doc['AccessControlList'];
  const raw = list === '' || list === undefined ? [] : (list as Record<string, unknown>)['Grant'];
  const grants = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  if (grants.length > MAX_ACL_GRANTS) throw new S3Error('MalformedACLError', `the ACL lists ${grants.length} grants; at most ${MAX_ACL_GRANTS}`);
  const names = [...new Set(grants.map((g, i) => grantName(g, owner, i)))].sort();
  for (const [canned, set] of CANNED_GRANTS) {
    if (set.length === names.length && [...set].sort().every((n, i) => n === names[i])) return canned;
  }
  throw new S3Error('NotImplemented', `the grants ${names.join(', ') || '(none)'} do not amount to a canned ACL (${CANNED_ACLS.join(', ')}); tessera keeps only those`);
}
