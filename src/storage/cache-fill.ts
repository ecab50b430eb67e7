/**
 * The one cache fill: hands a fetched range to the native fill (native/core/cache/fill.h), which
 * decodes, checks digests, writes the cache file (in its layout: plain, compressed or encrypted)
 * or the spill, sets the ready bits and wakes the parked READs on its own threads; here only the outcome is booked (waiters settled, counters,
 * the cache directory's health, the spill budget). Nothing of the fill runs on the event loop
 * except gzip, which Node's zlib decodes on its thread pool first.
 */
import { constants as osc } from 'node:os';

import { fill, kFillBadPlace, kFillCached, kFillDigestMismatch, kFillSpilled } from '../native/index.js';
import type { FillChunk, FillRequest, NativeChunkMap } from '../native/index.js';
import { compressorToEnum, digesterToEnum } from '../rafs/index.js';
import { isZero } from '../rafs/layout/bytes.js';
import type { Logger } from '../util/logger.js';
import type { FileRange } from './backend.js';
import type { CacheWriteHealth, SpillBudget } from './cache-health.js';
import type { LayoutKind } from './cache-layout.js';
import type { CacheCounters } from './counters.js';
import { StorageError } from './contract/errors.js';
import { errnoName } from './fetch-handle.js';
import type { FetchRange } from './fetch-plan.js';
import type { BlobInfo, ChunkInfo } from './types.js';

const kEBADMSG = osc.errno.EBADMSG;

/** What a fill needs from its blob (CachedBlob). */
export interface FillHost {
  readonly info: BlobInfo;
  readonly dataPath: string;
  /** How the cache file keeps chunks (cache-layout.ts); the native fill finds the layout on `map`. */
  readonly layoutKind: LayoutKind;
  readonly validate: boolean;
  readonly counters: CacheCounters;
  readonly log: Logger;
  readonly health: CacheWriteHealth;
  readonly budget: SpillBudget;
  readonly map: NativeChunkMap;
  /** The cache data file's descriptor (open until every fill settled). */
  readonly fd: number;
  closedError(): StorageError | undefined;
  /** Settles the waiters of a chunk (error: it failed). */
  settle(c: ChunkInfo, err?: Error): void;
  /** A chunk the native fill put in the spill (its bytes are reserved in the budget). */
  spilled(c: ChunkInfo): void;
}

/**
 * Fills the chunks of `r` from `buf` (the backend's bytes for r) and settles every one.
 * `speculative`: nobody waits for them yet (readahead, prefetch); on-demand fills go first.
 */
export async function fillRange(h: FillHost, r: FetchRange, buf: Buffer, speculative = false): Promise<void> {
  const closed = h.closedError();
  if (closed) {
    for (const c of r.chunks) h.settle(c, closed);
    return;
  }
  let src = buf;
  let chunks: FillChunk[];
  let algo = compressorToEnum(h.info.compressor);
  try {
    if (h.info.compressor === 'gzip') {
      ({ src, chunks } = await gunzipRange(h, r, buf));
      algo = compressorToEnum('none');
    } else {
      chunks = plainPlan(r);
    }
  } catch (err) {
    for (const c of r.chunks) h.settle(c, err instanceof Error ? err : new Error(String(err)));
    return;
  }
  await fillFrom(h, r, src, algo, chunks, speculative);
}

/** What reading the file range of fillFromFile came to. */
export interface FileRead {
  /** -errno of the read (nothing was filled nor settled then), 0 when it was read. */
  errno: number;
  /** How long the read took (0 when the fill never ran). */
  micros: number;
}

/**
 * Fills the chunks of `r` from `file` (a local backend's blob file, RawBackend.fileRange), which
 * the native fill reads itself on its thread. Every chunk is settled, except when the read fails:
 * the caller then settles them with the backend's error. Not for gzip (decoded in JavaScript).
 */
export async function fillFromFile(h: FillHost, r: FetchRange, file: FileRange, speculative = false): Promise<FileRead> {
  const closed = h.closedError();
  if (closed) {
    for (const c of r.chunks) h.settle(c, closed);
    return { errno: 0, micros: 0 };
  }
  const src = { fd: file.fd, position: file.position, length: r.length };
  return fillFrom(h, r, src, compressorToEnum(h.info.compressor), plainPlan(r), speculative);
}

function plainPlan(r: FetchRange): FillChunk[] {
  return r.chunks.map((c) => planOf(c, c.compressedOffset - r.offset, c.compressedSize, c.compressed));
}

async function fillFrom(h: FillHost, r: FetchRange, src: FillRequest['src'], algo: number, chunks: FillChunk[], speculative: boolean): Promise<FileRead> {
  const tryCache = h.health.shouldTry();
  let outcome;
  try {
    outcome = await fill({ algo, digester: digesterToEnum(h.info.digester), validate: h.validate, src, chunks, fd: tryCache ? h.fd : -1, map: h.map, allowSpill: true, speculative });
  } catch (err) {
    const e = new StorageError('ERR_CACHE_FILE', `blob ${h.info.blobId}: filling ${r.chunks.length} chunk(s) failed: ${(err as Error).message}`, { cause: err });
    for (const c of r.chunks) h.settle(c, e);
    return { errno: 0, micros: 0 };
  }
  if (outcome.sourceError !== 0) return { errno: -outcome.sourceError, micros: outcome.sourceMicros };
  if (outcome.storeError !== 0) {
    h.health.failed(errnoName(-outcome.storeError), `writing ${h.dataPath}`);
    h.counters.cacheWriteErrors++;
  } else if (tryCache) {
    h.health.succeeded();
  }
  const failed: [ChunkInfo, Error][] = [];
  r.chunks.forEach((c, i) => {
    const st = outcome.status[i] ?? -osc.errno.EIO;
    if (st === kFillCached) {
      h.counters.chunksFilled++;
      h.settle(c);
    } else if (st === kFillSpilled) {
      keepSpilled(h, c);
    } else {
      failed.push([c, chunkError(h, c, st)]);
    }
  });
  // After the good chunks: by the time a bad chunk fails a read, its neighbours have landed.
  for (const [c, e] of failed) h.settle(c, e);
  return { errno: 0, micros: outcome.sourceMicros };
}

function planOf(c: ChunkInfo, srcOffset: number, storedSize: number, compressed: boolean): FillChunk {
  return { srcOffset, storedSize, fileOffset: c.uncompressedOffset, size: c.uncompressedSize, compressed, index: c.chunkIndex, digest: isZero(c.digest) ? undefined : c.digest, compressedOffset: c.compressedOffset };
}

/** gzip is not decoded natively: zlib's thread pool inflates each chunk, the fill stores them. */
async function gunzipRange(h: FillHost, r: FetchRange, buf: Buffer): Promise<{ src: Buffer; chunks: FillChunk[] }> {
  // node:zlib (with stream and string_decoder) on first use: gzip blobs are rare, and loading it
  // cost every start ~2.5 ms (issue 13).
  const { gunzip } = process.getBuiltinModule('node:zlib');
  const gunzipAsync = (raw: Buffer, maxOutputLength: number): Promise<Buffer> =>
    new Promise((resolve, reject) => gunzip(raw, { maxOutputLength }, (e, out) => (e ? reject(e) : resolve(out))));
  const parts: Buffer[] = [];
  const chunks: FillChunk[] = [];
  let at = 0;
  for (const c of r.chunks) {
    const raw = buf.subarray(c.compressedOffset - r.offset, c.compressedOffset - r.offset + c.compressedSize);
    let data: Buffer;
    try {
      data = c.compressed ? await gunzipAsync(raw, c.uncompressedSize) : raw;
    } catch {
      data = Buffer.alloc(0);
    }
    if (data.length !== c.uncompressedSize) throw decodeError(h, c);
    parts.push(data);
    chunks.push(planOf(c, at, data.length, false));
    at += data.length;
  }
  return { src: Buffer.concat(parts), chunks };
}

/** Books a spilled chunk in the daemon-wide budget, or drops it again when there is no room. */
function keepSpilled(h: FillHost, c: ChunkInfo): void {
  const closed = h.closedError();
  if (!closed && h.budget.reserve(c.uncompressedSize)) {
    h.counters.chunksSpilled++;
    h.spilled(c);
    h.settle(c);
    return;
  }
  h.map.evictSpill(c.chunkIndex, c.uncompressedOffset, c.uncompressedSize);
  const e = closed ?? new StorageError('ERR_CACHE_FILE', `blob ${h.info.blobId}: the cache directory takes no writes and the in-memory spill (${h.budget.limit} bytes) is busy`);
  h.settle(c, e);
}

function decodeError(h: FillHost, c: ChunkInfo): StorageError {
  h.counters.decodeErrors++;
  const msg = `blob ${h.info.blobId} chunk ${c.chunkIndex}: cannot decompress (${h.info.compressor}, compressed offset ${c.compressedOffset} size ${c.compressedSize})`;
  h.log.error(msg);
  return new StorageError('ERR_CHUNK_DECODE', msg, { reported: true });
}

function chunkError(h: FillHost, c: ChunkInfo, st: number): StorageError {
  if (st === -kEBADMSG) return decodeError(h, c);
  if (st === kFillDigestMismatch) {
    h.counters.digestErrors++;
    const msg = `blob ${h.info.blobId} chunk ${c.chunkIndex}: ${h.info.digester} digest mismatch (compressed offset ${c.compressedOffset}); data rejected`;
    h.log.error(msg);
    return new StorageError('ERR_CHUNK_DIGEST', msg, { reported: true });
  }
  if (st === kFillBadPlace) {
    const msg = `blob ${h.info.blobId} chunk ${c.chunkIndex}: the ${h.layoutKind} cache cannot hold it (compressed offset ${c.compressedOffset} size ${c.compressedSize}, uncompressed offset ${c.uncompressedOffset} size ${c.uncompressedSize}${isZero(c.digest) ? ', no digest' : ''})`;
    h.log.error(msg);
    return new StorageError('ERR_BAD_CHUNK', msg, { reported: true });
  }
  return new StorageError('ERR_CACHE_FILE', `blob ${h.info.blobId} chunk ${c.chunkIndex}: cannot cache it nor keep it in memory: ${errnoName(-st)}`);
}
