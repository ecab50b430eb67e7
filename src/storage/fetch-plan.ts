/**
 * Turning missing chunks into backend requests (rafs-format.md §3.2, upstream cachedfile.rs):
 * neighbours in compressed space are merged while the gap between them is at most batch >> 7,
 * and a request is extended with the following chunks of the blob, in chunk index order, up to
 * `batch` bytes of compressed range ("amplify_io"). Pure functions: no I/O, no state.
 */
import type { ChunkInfo } from './types.js';

/** The cache-level window is never below 128 KiB, even with amplify_io = 0 (upstream). */
export const kMinBatchSize = 128 * 1024;
/** Upper bound of one merged request, so one huge read cannot pin unbounded memory. */
export const kMaxMergedRequest = 16 * 1024 * 1024;

export interface FetchRange {
  /** Compressed range in the blob. */
  offset: number;
  length: number;
  /** Ordered by compressed offset; each lies inside [offset, offset+length). */
  chunks: ChunkInfo[];
}

export function effectiveBatch(batchSize: number): number {
  return Math.max(batchSize, kMinBatchSize);
}

/** The request that spans `chunks` exactly (ordered by compressed offset, at least one). */
export function rangeOf(chunks: ChunkInfo[]): FetchRange {
  const offset = (chunks[0] as ChunkInfo).compressedOffset;
  let end = 0;
  for (const c of chunks) end = Math.max(end, c.compressedOffset + c.compressedSize);
  return { offset, length: end - offset, chunks };
}

/**
 * Merges chunks (any order, unique chunk indexes) into ranges of at most `maxLength` bytes
 * (default: the larger of batch and kMaxMergedRequest; a single larger chunk is a range alone).
 */
export function mergeChunks(chunks: readonly ChunkInfo[], batchSize: number, maxLength?: number): FetchRange[] {
  const batch = effectiveBatch(batchSize);
  const maxGap = batch >> 7;
  const cap = maxLength ?? Math.max(kMaxMergedRequest, batch);
  const sorted = [...chunks].sort((a, b) => a.compressedOffset - b.compressedOffset || a.chunkIndex - b.chunkIndex);
  const out: FetchRange[] = [];
  let cur: FetchRange | undefined;
  for (const c of sorted) {
    const end = c.compressedOffset + c.compressedSize;
    if (cur) {
      const curEnd = cur.offset + cur.length;
      const gap = c.compressedOffset - curEnd;
      const merged = Math.max(curEnd, end) - cur.offset;
      if (gap <= maxGap && merged <= cap) {
        cur.length = merged;
        cur.chunks.push(c);
        continue;
      }
    }
    cur = { offset: c.compressedOffset, length: c.compressedSize, chunks: [c] };
    out.push(cur);
  }
  return out;
}

/**
 * Extends each range with the chunks that follow its last chunk index while they are wanted
 * (`next` returns undefined to stop: unknown, ready, already in flight), contiguous within the
 * gap rule, and the range stays within `batch` bytes. Mutates and returns `ranges`.
 */
export function amplifyRanges(
  ranges: FetchRange[],
  batchSize: number,
  chunkCount: number,
  next: (index: number) => ChunkInfo | undefined,
): FetchRange[] {
  const batch = effectiveBatch(batchSize);
  const maxGap = batch >> 7;
  for (const r of ranges) {
    let last = -1;
    for (const c of r.chunks) last = Math.max(last, c.chunkIndex);
    for (let i = last + 1; i < chunkCount; i++) {
      const c = next(i);
      if (!c) break;
      const end = r.offset + r.length;
      const gap = c.compressedOffset - end;
      if (gap < 0 || gap > maxGap) break;
      const length = c.compressedOffset + c.compressedSize - r.offset;
      if (length > batch) break;
      r.length = length;
      r.chunks.push(c);
    }
  }
  return ranges;
}
