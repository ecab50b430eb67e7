/**
 * The prefetch planner: which ranges, in which order, merged how. Pure functions over chunk
 * lists, no I/O. When and how fast the ranges go out is the scheduler's job (prefetcher.ts);
 * turning a fetched range into cache data is the blob cache's fill, so either side can change
 * (a native fill) without the other.
 *
 * Merging follows upstream's prefetch rule (rafs-format.md §3.3): neighbours in compressed space
 * join while the gap between them is at most batch >> 7 and the request stays within the batch
 * size (merging_size / batch_size, at least 128 KiB); a chunk larger than that goes alone.
 */
import type { FetchRange } from '../fetch-plan.js';
import { effectiveBatch, mergeChunks } from '../fetch-plan.js';
import { lowerBoundBy } from '../../util/search.js';
import type { ChunkInfo } from '../types.js';

export interface PlannedRange extends FetchRange {
  blobIndex: number;
}

/** Ranges over one blob's chunks (unique indexes, any order), in compressed-offset order. */
export function mergeForPrefetch(chunks: readonly ChunkInfo[], batchSize: number): FetchRange[] {
  return mergeChunks(chunks, batchSize, effectiveBatch(batchSize));
}

/**
 * File-list prefetch. `chunks` come in priority order (files in list order, each file's chunks in
 * file order); repeats (hardlinks, shared chunks) count at their first place. Each blob's chunks
 * are merged in compressed order, then the ranges are ordered by the earliest place any of their
 * chunks had, so the first listed file goes out first even where the builder put its data late.
 */
export function planChunkList(chunks: Iterable<ChunkInfo>, batchSize: number): PlannedRange[] {
  const rank = new Map<number, Map<number, number>>();
  const byBlob = new Map<number, ChunkInfo[]>();
  let n = 0;
  for (const c of chunks) {
    let seen = rank.get(c.blobIndex);
    if (!seen) {
      seen = new Map();
      rank.set(c.blobIndex, seen);
      byBlob.set(c.blobIndex, []);
    }
    if (seen.has(c.chunkIndex)) continue;
    seen.set(c.chunkIndex, n++);
    byBlob.get(c.blobIndex)?.push(c);
  }
  const ranked: { r: PlannedRange; first: number }[] = [];
  for (const [blobIndex, list] of byBlob) {
    const seen = rank.get(blobIndex) as Map<number, number>;
    for (const r of mergeForPrefetch(list, batchSize)) {
      let first = Infinity;
      for (const c of r.chunks) first = Math.min(first, seen.get(c.chunkIndex) ?? Infinity);
      ranked.push({ r: { ...r, blobIndex }, first });
    }
  }
  return ranked.sort((a, b) => a.first - b.first).map((x) => x.r);
}

/**
 * Whole-blob prefetch (prefetch_all): every chunk of the blob, `sorted` by compressed offset with
 * unique indexes (see ChunkIndex), in batch-sized ranges from the start of the blob.
 */
export function planWholeBlob(blobIndex: number, sorted: readonly ChunkInfo[], batchSize: number): PlannedRange[] {
  return mergeForPrefetch(sorted, batchSize).map((r) => ({ ...r, blobIndex }));
}

/** The chunks of `sorted` lying wholly inside `[offset, offset+length)`, in compressed order. */
export function chunksWithin(sorted: readonly ChunkInfo[], offset: number, length: number): ChunkInfo[] {
  const end = offset + length;
  const out: ChunkInfo[] = [];
  for (let i = lowerBoundBy(sorted.length, (k) => (sorted[k] as ChunkInfo).compressedOffset, offset); i < sorted.length; i++) {
    const c = sorted[i] as ChunkInfo;
    if (c.compressedOffset >= end) break;
    if (c.compressedOffset + c.compressedSize <= end) out.push(c);
  }
  return out;
}

export interface RecordedRange {
  offset: number;
  length: number;
}

/** The chunks lying wholly inside `[offset, offset+length)`, in compressed order. */
export type ChunksWithin = (offset: number, length: number) => ChunkInfo[];

/**
 * Replaying a readahead log: exactly the recorded bytes, nothing else. Ranges that touch (one
 * ends where the other starts) are joined up to `batchSize` per request, since a start reads
 * many small files that lie side by side and a request each would spend more on round trips
 * than on data; joined ranges go out at the place of their earliest member, so what the start
 * read first comes first. Ranges holding no whole chunk of the image (a log from another build
 * of it) are dropped. `chunks`: the blob's chunks sorted by compressed offset, or a lookup.
 */
export function planRecorded(blobIndex: number, recorded: readonly RecordedRange[], chunks: readonly ChunkInfo[] | ChunksWithin, batchSize: number): PlannedRange[] {
  const within: ChunksWithin = typeof chunks === 'function' ? chunks : (offset, length) => chunksWithin(chunks, offset, length);
  const byOffset = recorded.map((r, i) => ({ ...r, first: i })).sort((a, b) => a.offset - b.offset || a.first - b.first);
  const joined: { offset: number; length: number; first: number }[] = [];
  const cap = effectiveBatch(batchSize);
  for (const r of byOffset) {
    const last = joined[joined.length - 1];
    if (last && last.offset + last.length === r.offset && last.length + r.length <= cap) {
      last.length += r.length;
      last.first = Math.min(last.first, r.first);
    } else if (last && r.offset < last.offset + last.length) {
      // Overlapping entries (a log written by something else): keep the union.
      const end = Math.max(last.offset + last.length, r.offset + r.length);
      last.length = end - last.offset;
      last.first = Math.min(last.first, r.first);
    } else {
      joined.push({ ...r });
    }
  }
  const out: (PlannedRange & { first: number })[] = [];
  for (const r of joined) {
    const found = within(r.offset, r.length);
    if (found.length > 0) out.push({ blobIndex, offset: r.offset, length: r.length, chunks: found, first: r.first });
  }
  return out.sort((a, b) => a.first - b.first).map(({ first: _first, ...r }) => r);
}
