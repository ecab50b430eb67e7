/**
 * Request signing for the object stores (reference/rafs-format.md §3.7), written from the
 * published algorithms:
 * - AWS Signature Version 4 (AWS4-HMAC-SHA256): canonical request -> string to sign -> HMAC
 *   chain over date, region, service and "aws4_request". Every header given is signed (the
 *   caller leaves out authorization and user-agent, as upstream does).
 * - Alibaba OSS header signature v1: base64(HMAC-SHA1(secret, VERB \n Content-MD5 \n
 *   Content-Type \n Date \n CanonicalizedOSSHeaders CanonicalizedResource)).
 * Pure functions of their inputs (the date included), so the published examples are tests.
 */
import { createHash, createHmac } from 'node:crypto';

export const kEmptySha256 = createHash('sha256').update('').digest('hex');

/** RFC 3986 encoding as AWS specifies it: unreserved characters kept, the rest %XX (upper case). */
export function awsUriEncode(s: string, keepSlash: boolean): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The canonical URI of a path (S3: each segment encoded once, slashes kept). */
export function canonicalUri(pathname: string): string {
  const p = pathname === '' ? '/' : pathname;
  return p.split('/').map((seg) => awsUriEncode(safeDecode(seg), false)).join('/');
}

/** The canonical query: parameters encoded, sorted by name then value. */
export function canonicalQuery(search: URLSearchParams): string {
  const pairs = [...search.entries()].map(([k, v]) => [awsUriEncode(k, false), awsUriEncode(v, false)] as const);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/** `20150830T123600Z` for a Date. */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

export interface SigV4Input {
  method: string;
  url: URL;
  /** Headers to sign (host and x-amz-date among them). */
  headers: Readonly<Record<string, string>>;
  payloadHash: string;
  region: string;
  service: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** x-amz-date value, `YYYYMMDDTHHMMSSZ`. */
  amzDate: string;
}

export interface SigV4Result {
  authorization: string;
  signedHeaders: string;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function signV4(i: SigV4Input): SigV4Result {
  const canon = new Map<string, string>();
  for (const [k, v] of Object.entries(i.headers)) {
    const name = k.toLowerCase();
    if (name === 'authorization' || name === 'user-agent') continue;
    const value = v.trim().replace(/\s+/g, ' ');
    canon.set(name, canon.has(name) ? `${canon.get(name) ?? ''},${value}` : value);
  }
  const names = [...canon.keys()].sort();
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    i.method.toUpperCase(),
    canonicalUri(i.url.pathname),
    canonicalQuery(i.url.searchParams),
    names.map((n) => `${n}:${canon.get(n) ?? ''}\n`).join(''),
    signedHeaders,
    i.payloadHash,
  ].join('\n');
  const day = i.amzDate.slice(0, 8);
  const scope = `${day}/${i.region}/${i.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', i.amzDate, scope, createHash('sha256').update(canonicalRequest, 'utf8').digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${i.secretAccessKey}`, day), i.region), i.service), 'aws4_request');
  const signature = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${i.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    signedHeaders,
    canonicalRequest,
    stringToSign,
    signature,
  };
}

export interface OssSignInput {
  method: string;
  /** Date header value (RFC 1123, GMT). */
  date: string;
  contentMd5?: string;
  contentType?: string;
  /** All request headers; the x-oss-* ones are signed. */
  headers: Readonly<Record<string, string>>;
  /** `/bucket/object-key` (plus `?subresource` when any). */
  resource: string;
  accessKeyId: string;
  accessKeySecret: string;
}

export function ossStringToSign(i: OssSignInput): string {
  const oss = Object.entries(i.headers)
    .map(([k, v]) => [k.toLowerCase(), v.trim()] as const)
    .filter(([k]) => k.startsWith('x-oss-'))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}:${v}\n`)
    .join('');
  return `${i.method.toUpperCase()}\n${i.contentMd5 ?? ''}\n${i.contentType ?? ''}\n${i.date}\n${oss}${i.resource}`;
}

/** `OSS <AccessKeyId>:<Signature>`. */
export function signOss(i: OssSignInput): { authorization: string; signature: string } {
  const signature = createHmac('sha1', i.accessKeySecret).update(ossStringToSign(i), 'utf8').digest('base64');
  return { authorization: `OSS ${i.accessKeyId}:${signature}`, signature };
}
