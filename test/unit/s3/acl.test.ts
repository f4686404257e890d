/** S3 ACLs: canned names, the AccessControlPolicy document both ways and its bounds, and what each canned ACL grants. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../../src/errors.js';
import { formatFileId } from '../../../src/content/index.js';
import { checkBucketRecord, checkObjectRecord, checkUploadRecord } from '../../../src/tables/index.js';
import {
  ALL_USERS_URI, CANNED_ACLS, MAX_ACL_BODY_BYTES, MAX_ACL_GRANTS, aclDocument, aclFromHeaders, aclGrantsRead, parseAclDocument, parseCannedAcl, storedAcl,
  type CannedAcl,
} from '../../../src/s3/acl.js';
import { authenticate, isSigned } from '../../../src/s3/auth.js';
import { S3Error, type S3ErrorCode } from '../../../src/s3/errors.js';

const OWNER = { id: 'TKAAAAAAAAAAAAAAAAAA', name: 'main' };
const s3Code = (code: S3ErrorCode) => (e: unknown) => e instanceof S3Error && e.code === code;

function policy(grants: string[], ownerId = OWNER.id): Buffer {
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>${ownerId}</ID><DisplayName>main</DisplayName></Owner>
<AccessControlList>${grants.join('')}</AccessControlList></AccessControlPolicy>`);
}
const userGrant = (id: string, perm: string) =>
  `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>${id}</ID></Grantee><Permission>${perm}</Permission></Grant>`;
const groupGrant = (uri: string, perm: string) =>
  `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>${uri}</URI></Grantee><Permission>${perm}</Permission></Grant>`;

test('every canned ACL survives the document round trip: formatted as S3 shows it, parsed back to the same name', () => {
  for (const acl of CANNED_ACLS) {
    const doc = aclDocument(OWNER, storedAcl(acl));
    assert.match(doc, /<Owner><ID>TKAAAAAAAAAAAAAAAAAA<\/ID><DisplayName>main<\/DisplayName><\/Owner>/);
    assert.match(doc, /xsi:type="CanonicalUser"><ID>TKAAAAAAAAAAAAAAAAAA<\/ID><DisplayName>main<\/DisplayName><\/Grantee><Permission>FULL_CONTROL<\/Permission>/);
    assert.equal(parseAclDocument(Buffer.from(doc), OWNER), acl, acl);
  }
  assert.equal((aclDocument(OWNER, undefined).match(/<Grant>/g) ?? []).length, 1);
  assert.equal((aclDocument(OWNER, 'public-read-write').match(/<Grant>/g) ?? []).length, 3);
  assert.match(aclDocument(OWNER, 'authenticated-read'), /AuthenticatedUsers<\/URI><\/Grantee><Permission>READ/);
  // Names are escaped: a key name cannot inject markup into the document.
  assert.match(aclDocument({ id: 'TKB', name: '<x>&' }, undefined), /<DisplayName>&lt;x&gt;&amp;<\/DisplayName>/);
});

test('grants in any order, repeated, map to their canned ACL; grants to other users or unknown groups are NotImplemented', () => {
  const ownerFull = userGrant(OWNER.id, 'FULL_CONTROL');
  assert.equal(parseAclDocument(policy([groupGrant(ALL_USERS_URI, 'READ'), ownerFull, ownerFull]), OWNER), 'public-read');
  assert.equal(parseAclDocument(policy([ownerFull]), OWNER), 'private');
  assert.throws(() => parseAclDocument(policy([ownerFull, userGrant('TKOTHERAAAAAAAAAAAAA', 'FULL_CONTROL')]), OWNER), s3Code('NotImplemented'));
  assert.throws(() => parseAclDocument(policy([ownerFull, groupGrant('http://acs.amazonaws.com/groups/s3/LogDelivery', 'WRITE')]), OWNER), s3Code('NotImplemented'));
  // A set of grants no canned ACL has (the owner's own grant missing, or WRITE without READ).
  assert.throws(() => parseAclDocument(policy([groupGrant(ALL_USERS_URI, 'READ')]), OWNER), s3Code('NotImplemented'));
  assert.throws(() => parseAclDocument(policy([ownerFull, groupGrant(ALL_USERS_URI, 'WRITE')]), OWNER), s3Code('NotImplemented'));
  assert.throws(() => parseAclDocument(policy([]), OWNER), s3Code('NotImplemented'));
  assert.throws(() => parseAclDocument(policy([ownerFull.replace('FULL_CONTROL', 'EVERYTHING')]), OWNER), s3Code('MalformedACLError'));
  assert.throws(() => parseAclDocument(policy(['<Grant><Grantee></Grantee><Permission>READ</Permission></Grant>']), OWNER), s3Code('MalformedACLError'));
});

test('the ACL document is bounded: size, grant count, DOCTYPE, nesting; the owner cannot be changed through it', () => {
  const ownerFull = userGrant(OWNER.id, 'FULL_CONTROL');
  const big = policy([ownerFull, `<!-- ${'x'.repeat(MAX_ACL_BODY_BYTES)} -->`]);
  assert.ok(big.length > MAX_ACL_BODY_BYTES);
  assert.throws(() => parseAclDocument(big, OWNER), s3Code('MalformedACLError'));
  const many = policy(Array.from({ length: MAX_ACL_GRANTS + 1 }, () => ownerFull));
  assert.ok(many.length <= MAX_ACL_BODY_BYTES, 'the grant bound is reached before the size bound');
  assert.throws(() => parseAclDocument(many, OWNER), s3Code('MalformedACLError'));
  assert.equal(parseAclDocument(policy(Array.from({ length: MAX_ACL_GRANTS }, () => ownerFull)), OWNER), 'private');
  assert.throws(() => parseAclDocument(Buffer.from('<!DOCTYPE x [<!ENTITY a "b">]><AccessControlPolicy/>'), OWNER), s3Code('MalformedXML'));
  assert.throws(() => parseAclDocument(Buffer.from('<AccessControlPolicy><Owner>'), OWNER), s3Code('MalformedXML'));
  assert.throws(() => parseAclDocument(Buffer.from('<Other/>'), OWNER), s3Code('MalformedXML'));
  assert.throws(() => parseAclDocument(Buffer.from(`<AccessControlPolicy>${'<a>'.repeat(20)}${'</a>'.repeat(20)}</AccessControlPolicy>`), OWNER), s3Code('MalformedXML'));
  assert.throws(() => parseAclDocument(policy([ownerFull], 'TKSOMEONEELSEAAAAAAA'), OWNER), s3Code('AccessDenied'));
});

test('x-amz-acl: the four canned names are kept, the others S3 defines are NotImplemented, anything else InvalidArgument; grant headers NotImplemented', () => {
  for (const acl of CANNED_ACLS) assert.equal(parseCannedAcl(` ${acl} `), acl);
  assert.equal(parseCannedAcl(undefined), undefined);
  for (const v of ['bucket-owner-full-control', 'bucket-owner-read', 'aws-exec-read', 'log-delivery-write']) assert.throws(() => parseCannedAcl(v), s3Code('NotImplemented'));
  for (const v of ['', 'public', 'PUBLIC-READ', 'x'.repeat(5000)]) assert.throws(() => parseCannedAcl(v), s3Code('InvalidArgument'));
  const headers = (h: Record<string, string>) => (name: string) => h[name];
  assert.equal(aclFromHeaders(headers({ 'x-amz-acl': 'public-read' })), 'public-read');
  assert.equal(aclFromHeaders(headers({})), undefined);
  assert.throws(() => aclFromHeaders(headers({ 'x-amz-grant-read': 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' })), s3Code('NotImplemented'));
});

test('what each canned ACL grants: READ to everyone (public-*), to access keys only (authenticated-read), to nobody else (private)', () => {
  const table: Array<[CannedAcl, boolean, boolean]> = [
    ['private', false, false],
    ['public-read', true, true],
    ['public-read-write', true, true],
    ['authenticated-read', false, true],
  ];
  for (const [acl, anonymous, authenticated] of table) {
    assert.equal(aclGrantsRead(storedAcl(acl), 'anonymous'), anonymous, `${acl} anonymous`);
    assert.equal(aclGrantsRead(storedAcl(acl), 'authenticated'), authenticated, `${acl} authenticated`);
  }
  assert.equal(storedAcl('private'), undefined, 'private is stored as no field at all');
});

test('records: owner and ACL are optional (records written before them still read), bounded, and only canned names', () => {
  const obj = { fileId: formatFileId(Buffer.alloc(32), Buffer.alloc(32)), size: 0, etag: '', checksums: {}, contentType: 'x/y', userMeta: {}, mtime: 0 };
  assert.equal(checkObjectRecord(obj).acl, undefined);
  assert.deepEqual(checkObjectRecord({ ...obj, owner: OWNER, acl: 'public-read' }).owner, OWNER);
  const bad = (v: () => unknown) => assert.throws(v, (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT');
  bad(() => checkObjectRecord({ ...obj, acl: 'private' }));
  bad(() => checkObjectRecord({ ...obj, acl: 'bucket-owner-full-control' }));
  bad(() => checkObjectRecord({ ...obj, owner: { id: 'has space', name: 'x' } }));
  bad(() => checkObjectRecord({ ...obj, owner: { id: 'TK', name: 'x'.repeat(129) } }));
  const bucket = { id: '0'.repeat(32), createdAt: 0, policy: { kind: 'replicas', r: 3, w: 2 } };
  assert.equal(checkBucketRecord(bucket).acl, undefined);
  assert.equal(checkBucketRecord({ ...bucket, owner: 'TKA', ownerName: 'main', acl: 'public-read-write' }).acl, 'public-read-write');
  bad(() => checkBucketRecord({ ...bucket, acl: 'everyone' }));
  const upload = { createdAt: 0, contentType: 'x/y', userMeta: {}, policy: bucket.policy, initiator: OWNER };
  assert.equal(checkUploadRecord(upload).acl, undefined);
  assert.deepEqual(checkUploadRecord({ ...upload, acl: 'authenticated-read', headers: { 'cache-control': 'no-cache' } }).headers, { 'cache-control': 'no-cache' });
  bad(() => checkUploadRecord({ ...upload, headers: { 'x-evil': 'y' } }));
});

test('a request is anonymous only when it carries no signature at all: neither an Authorization header nor X-Amz-Signature', () => {
  const h = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, [v]]));
  assert.equal(isSigned({ headers: h({ host: 'x' }), rawQuery: '' }), false);
  assert.equal(isSigned({ headers: h({ host: 'x' }), rawQuery: 'X-Amz-Credential=TK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&list-type=2' }), false);
  assert.equal(isSigned({ headers: h({ host: 'x', authorization: 'AWS4-HMAC-SHA256 Credential=…' }), rawQuery: '' }), true);
  // A malformed or V2 Authorization header is still a signature attempt: it is checked (and refused), not served as anonymous.
  assert.equal(isSigned({ headers: h({ host: 'x', authorization: 'AWS AKID:abc' }), rawQuery: '' }), true);
  assert.equal(isSigned({ headers: h({ host: 'x' }), rawQuery: 'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00' }), true);
  assert.equal(isSigned({ headers: h({ host: 'x' }), rawQuery: 'AWSAccessKeyId=TK&Signature=abc&Expires=1' }), true);
});

test('a Signature V2 presigned URL is refused as such', async () => {
  const q = 'AWSAccessKeyId=TKAAAAAAAAAAAAAAAAAA&Signature=abc&Expires=1796594379';
  await assert.rejects(authenticate({ method: 'GET', rawPath: '/b/k', rawQuery: q, headers: { host: ['x'] } }, Date.now(), async () => null), (e: unknown) => s3Code('AccessDenied')(e) && /Version 2/.test((e as Error).message));
});
