/**
 * What a ranged GET or a HEAD must answer before its bytes are believed. Every HTTP backend
 * (registry, S3, OSS, http-proxy) checks its replies here, so a server that ignores `Range`,
 * answers a different range, truncates the body or contradicts the size it reported earlier
 * fails that attempt instead of putting wrong bytes in the cache.
 */
import { StorageError } from '../contract/errors.js';
import type { HttpResponse } from './client.js';
import { header } from './client.js';

/** `Range` header value for `[offset, offset+length)` (length >= 1). */
export function rangeHeader(offset: number, length: number): string {
  return `bytes=${offset}-${offset + length - 1}`;
}

export interface ContentRange {
  start: number;
  end: number;
  /** undefined for `*`. */
  total: number | undefined;
}

/** Parses `bytes a-b/total` (total may be `*`); undefined when malformed. */
export function parseContentRange(v: string | undefined): ContentRange | undefined {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v ?? '');
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  if (total !== undefined && (!Number.isSafeInteger(total) || end >= total)) return undefined;
  return { start, end, total };
}

/** Error for a status that is not a success, with the retry verdict upstream's retry_op uses. */
export function statusError(what: string, res: HttpResponse, blobId: string): StorageError {
  const s = res.status;
  if (s === 404) return new StorageError('ERR_BLOB_NOT_FOUND', `blob ${blobId}: ${what}: HTTP 404 (not found)`);
  if (s === 416) return new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: ${what}: HTTP 416 (range not satisfiable; the blob is shorter)`);
  if (s === 401 || s === 403) return new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: HTTP ${s} (access denied)`);
  const retryable = s >= 500 || s === 408 || s === 429;
  return new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: HTTP ${s}`, { retryable });
}

/**
 * The body of a ranged GET, checked: 206 with the Content-Range asked for (and the total the
 * size check saw, when known) or a 200 carrying exactly the whole blob from offset 0; the body
 * exactly `length` bytes. A short body is retryable (upstream retries short reads of remote
 * backends); a different range or size is not.
 */
export function checkRangeBody(
  what: string,
  res: HttpResponse,
  blobId: string,
  offset: number,
  length: number,
  knownSize: number | undefined,
): Buffer {
  if (res.status === 200) {
    const ok = offset === 0 && res.body.length === length && (knownSize === undefined || knownSize === length);
    if (!ok) {
      throw new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: HTTP 200 with ${res.body.length} bytes: the server ignored the Range header (offset ${offset} length ${length})`);
    }
    return res.body;
  }
  if (res.status !== 206) throw statusError(what, res, blobId);
  const raw = header(res, 'content-range');
  const cr = parseContentRange(raw);
  if (!cr) throw new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: HTTP 206 without a valid Content-Range (${raw === undefined ? 'none' : JSON.stringify(raw.slice(0, 80))})`, { retryable: true });
  if (cr.start !== offset || cr.end !== offset + length - 1) {
    throw new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: asked for bytes ${offset}-${offset + length - 1}, the server sent ${cr.start}-${cr.end}`, {
      retryable: cr.start === offset && cr.end < offset + length - 1,
    });
  }
  if (knownSize !== undefined && cr.total !== undefined && cr.total !== knownSize) {
    throw new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: the server now says the blob has ${cr.total} bytes, it said ${knownSize} before`);
  }
  if (res.body.length !== length) {
    throw new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: ${what}: short body, ${res.body.length} of ${length} bytes`, { retryable: true });
  }
  return res.body;
}

/**
 * Whether a reply's head announces exactly `[offset, offset+length)` (the checks of
 * checkRangeBody that need no body): a 206 with that Content-Range (and the known total), or a
 * 200 for a whole blob of `length` bytes asked from offset 0.
 */
export function rangeHeadMatches(head: Pick<HttpResponse, 'status' | 'headers'>, offset: number, length: number, knownSize: number | undefined): boolean {
  if (head.status === 200) return offset === 0 && (knownSize === undefined || knownSize === length);
  if (head.status !== 206) return false;
  const cr = parseContentRange(header(head, 'content-range'));
  if (!cr || cr.start !== offset || cr.end !== offset + length - 1) return false;
  return knownSize === undefined || cr.total === undefined || cr.total === knownSize;
}

/** The blob size from a HEAD (200 with a Content-Length). */
export function sizeFromHead(what: string, res: HttpResponse, blobId: string): number {
  if (res.status !== 200) throw statusError(what, res, blobId);
  const v = header(res, 'content-length');
  const n = v === undefined || !/^\d+$/.test(v.trim()) ? Number.NaN : Number(v.trim());
  if (!Number.isSafeInteger(n)) throw new StorageError('ERR_BACKEND', `blob ${blobId}: ${what}: no valid Content-Length in the reply`, { retryable: true });
  return n;
}
