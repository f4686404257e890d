/**
 * S3's XML: a writer for responses and a bounded parser for the two request bodies S3 defines
 * as XML (DeleteObjects, CompleteMultipartUpload). Pure, no I/O.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { S3Error } from './errors.js';

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
/** DeleteObjects names at most 1,000 keys of 1 KiB; CompleteMultipartUpload 10,000 parts of ~100 bytes. */
export const MAX_XML_BODY_BYTES = 2 << 20;
/** Nesting in the bodies S3 defines is three or four levels. */
export const MAX_XML_DEPTH = 8;

/** Markup already escaped; strings given to `el` are escaped, an `Xml` is not. */
export class Xml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type XmlChild = Xml | string | number | boolean | null | undefined | XmlChild[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Escapes text for an element or attribute; control characters XML 1.0 cannot carry become character references S3 clients accept. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) => `&#x${c.charCodeAt(0).toString(16)};`);
}

function render(c: XmlChild): string {
  if (c === null || c === undefined) return '';
  if (c instanceof Xml) return c.text;
  if (Array.isArray(c)) return c.map(render).join('');
  return escapeXml(String(c));
}

/** `<name attrs>children</name>`; null and undefined children are left out, arrays flattened. */
export function el(name: string, ...children: XmlChild[]): Xml {
  return new Xml(`<${name}>${children.map(render).join('')}</${name}>`);
}

/** A whole response document with S3's namespace on its root. */
export function xmlDocument(root: string, ...children: XmlChild[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_XMLNS}">${children.map(render).join('')}</${root}>`;
}

/** The error document S3 sends, with no namespace (as S3 does). */
export function errorDocument(code: string, message: string, resource: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${el('Error', el('Code', code), el('Message', message), el('Resource', resource), el('RequestId', requestId)).text}`;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  removeNSPrefix: true,
  ignoreDeclaration: true,
  processEntities: true,
  // Numeric character references (&#34;, &#x22;): Go's encoding/xml writes quotes that way, so
  // rclone's CompleteMultipartUpload ETags arrive as &#34;…&#34;.
  htmlEntities: true,
  // Elements that may repeat are always arrays, so a body with one entry reads like one with many.
  isArray: (name) => name === 'Object' || name === 'Part',
});

function depthOf(v: unknown, d = 0): number {
  if (d > MAX_XML_DEPTH) return d;
  if (Array.isArray(v)) return Math.max(d, ...v.map((x) => depthOf(x, d)));
  if (v !== null && typeof v === 'object') return Math.max(d + 1, ...Object.values(v).map((x) => depthOf(x, d + 1)));
  return d;
}

/**
 * Parses a request body S3 defines as XML. Anything over the size bound, with a DOCTYPE (entity
 * expansion), not well-formed, too deep, or without the expected root is MalformedXML.
 */
export function parseXmlBody(body: Buffer, root: string): Record<string, unknown> {
  if (body.length > MAX_XML_BODY_BYTES) throw new S3Error('MalformedXML', `the XML body is ${body.length} bytes, over the ${MAX_XML_BODY_BYTES}-byte limit`);
  const text = body.toString('utf8');
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new S3Error('MalformedXML', 'the XML body declares a DOCTYPE or entities, which S3 request bodies never carry');
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new S3Error('MalformedXML', `the XML body is not well-formed: ${valid.err.msg} (line ${valid.err.line})`);
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new S3Error('MalformedXML', `the XML body does not parse: ${(e as Error).message}`);
  }
  if (depthOf(doc) > MAX_XML_DEPTH) throw new S3Error('MalformedXML', `the XML body nests deeper than ${MAX_XML_DEPTH} levels`);
  const r = doc[root];
  if (r === undefined || r === null || typeof r !== 'object' || Array.isArray(r)) {
    if (r === '') return {};
    throw new S3Error('MalformedXML', `the XML body's root element must be <${root}>`);
  }
  return r as Record<string, unknown>;
}
