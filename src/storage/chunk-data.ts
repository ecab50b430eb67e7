/**
 * Checks and transforms shared by both cache kinds: a chunk's metadata against its blob (image
 * data is untrusted), fetched bytes -> verified uncompressed chunk, and copying the part of a
 * chunk a file read wants.
 */
import { chunkDigest, decodeChunk } from '../rafs/index.js';
import { isZero } from '../rafs/layout/bytes.js';
import { kMaxChunkSize } from '../rafs/layout/constants.js';
import type { Logger } from '../util/logger.js';
import type { CacheCounters } from './counters.js';
import { StorageError } from './contract/errors.js';
import type { BlobInfo, ChunkInfo } from './types.js';

/** Compressed chunks may be slightly larger than their data (incompressible input). */
const kMaxCompressedChunk = kMaxChunkSize + 64 * 1024;

export function checkChunk(blob: BlobInfo, c: ChunkInfo): void {
  const bad = (what: string): never => {
    throw new StorageError('ERR_BAD_CHUNK', `blob ${blob.blobId} chunk ${c.chunkIndex}: ${what}`);
  };
  if (c.blobIndex !== blob.index) bad(`belongs to blob index ${c.blobIndex}, not ${blob.index}`);
  if (!Number.isInteger(c.chunkIndex) || c.chunkIndex < 0 || c.chunkIndex >= blob.chunkCount) {
    bad(`index out of range (blob has ${blob.chunkCount} chunks)`);
  }
  if (!Number.isSafeInteger(c.uncompressedSize) || c.uncompressedSize <= 0 || c.uncompressedSize > kMaxChunkSize) {
    bad(`invalid uncompressed size ${c.uncompressedSize}`);
  }
  if (!Number.isSafeInteger(c.uncompressedOffset) || c.uncompressedOffset < 0 || c.uncompressedOffset + c.uncompressedSize > blob.uncompressedSize) {
    bad(`uncompressed range ${c.uncompressedOffset}+${c.uncompressedSize} exceeds the blob (${blob.uncompressedSize} bytes)`);
  }
  if (!Number.isSafeInteger(c.compressedSize) || c.compressedSize <= 0 || c.compressedSize > kMaxCompressedChunk) {
    bad(`invalid compressed size ${c.compressedSize}`);
  }
  if (!Number.isSafeInteger(c.compressedOffset) || c.compressedOffset < 0) bad(`invalid compressed offset ${c.compressedOffset}`);
  if (blob.compressedSize > 0 && c.compressedOffset + c.compressedSize > blob.compressedSize) {
    bad(`compressed range ${c.compressedOffset}+${c.compressedSize} exceeds the blob data (${blob.compressedSize} bytes)`);
  }
  if (!c.compressed && c.compressedSize !== c.uncompressedSize) bad('uncompressed chunk with different stored and data sizes');
  if (!Number.isSafeInteger(c.fileOffset) || c.fileOffset < 0) bad(`invalid file offset ${c.fileOffset}`);
}

export interface VerifyContext {
  blob: BlobInfo;
  validate: boolean;
  counters: CacheCounters;
  log: Logger;
}

function decodeFailed(ctx: VerifyContext, c: ChunkInfo, err: unknown): never {
  const { blob } = ctx;
  ctx.counters.decodeErrors++;
  const msg = `blob ${blob.blobId} chunk ${c.chunkIndex}: cannot decompress (${blob.compressor}, compressed offset ${c.compressedOffset} size ${c.compressedSize}): ${(err as Error).message}`;
  ctx.log.error(msg);
  throw new StorageError('ERR_CHUNK_DECODE', msg, { cause: err, reported: true });
}

/** Decompresses and (when asked and the image has a digest) validates one chunk. */
export function decodeAndVerify(ctx: VerifyContext, c: ChunkInfo, raw: Buffer): Buffer {
  const { blob } = ctx;
  let data: Buffer;
  try {
    data = c.compressed ? decodeChunk(blob.compressor, raw, c.uncompressedSize) : raw;
  } catch (err) {
    decodeFailed(ctx, c, err);
  }
  if (data.length !== c.uncompressedSize) {
    throw new StorageError('ERR_CHUNK_DECODE', `blob ${blob.blobId} chunk ${c.chunkIndex}: ${data.length} bytes, expected ${c.uncompressedSize}`);
  }
  verifyDigest(ctx, c, data);
  return data;
}

function verifyDigest(ctx: VerifyContext, c: ChunkInfo, data: Buffer): void {
  const { blob } = ctx;
  if (ctx.validate && !isZero(c.digest)) {
    const got = chunkDigest(blob.digester, data);
    if (!got.equals(c.digest)) {
      ctx.counters.digestErrors++;
      const msg = `blob ${blob.blobId} chunk ${c.chunkIndex}: ${blob.digester} digest mismatch (compressed offset ${c.compressedOffset}); data rejected`;
      ctx.log.error(msg);
      throw new StorageError('ERR_CHUNK_DIGEST', msg, { reported: true });
    }
  }
}

/** The intersection of a chunk with the file range `[fileOffset, fileOffset+length)`, or undefined. */
export function intersect(c: ChunkInfo, fileOffset: number, length: number): { start: number; end: number } | undefined {
  const start = Math.max(fileOffset, c.fileOffset);
  const end = Math.min(fileOffset + length, c.fileOffset + c.uncompressedSize);
  return start < end ? { start, end } : undefined;
}

/** One blob's data as the filesystem layer sees it. */
export interface BlobSource {
  readonly info: BlobInfo;
  /** True for blobcache: data lands in `<blob_id>.blob.data` (the native READ fast path can use it). */
  readonly persistent: boolean;
  /**
   * Fetches whatever of `chunks` is not cached yet; resolves when all are ready. `aheadEnd`: one
   * past the last chunk index of the file being read (readahead goes no further).
   */
  ensureReady(chunks: readonly ChunkInfo[], signal?: AbortSignal, aheadEnd?: number): Promise<void>;
  /** Fills `out` (= file bytes `[fileOffset, fileOffset+out.length)`) from the parts of `chunks` it covers; other bytes are left alone. */
  readInto(chunks: readonly ChunkInfo[], fileOffset: number, out: Buffer, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Rejects when `signal` aborts; the underlying work continues for other waiters. */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new StorageError('ERR_ABORTED', `${what}: aborted`, { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new StorageError('ERR_ABORTED', `${what}: aborted`, { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
