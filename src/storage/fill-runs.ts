/**
 * Helpers of the JavaScript cache fill (blob-cache.ts): writing a whole buffer, and cutting a
 * fetched range's chunks into runs adjacent in the uncompressed blob.
 */
import type { ChunkInfo } from './types.js';

/** Writes all of `bytes` at `position` through `write` (which may write less). */
export async function writeAll(write: (b: Buffer, off: number, len: number, pos: number) => Promise<number>, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = await write(bytes, done, bytes.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}

export interface DecodedChunk {
  c: ChunkInfo;
  /** The buffer its run was decoded into, and where in it this chunk's bytes start. */
  run: Buffer;
  at: number;
}

/**
 * `chunks` sorted by uncompressed offset and cut into runs where each chunk starts exactly
 * where the previous one ends (chunks that share or overlap data start a new run).
 */
export function adjacentRuns(chunks: readonly ChunkInfo[]): ChunkInfo[][] {
  const sorted = [...chunks].sort((a, b) => a.uncompressedOffset - b.uncompressedOffset);
  const runs: ChunkInfo[][] = [];
  let cur: ChunkInfo[] = [];
  let end = -1;
  for (const c of sorted) {
    if (c.uncompressedOffset !== end) {
      cur = [];
      runs.push(cur);
    }
    cur.push(c);
    end = c.uncompressedOffset + c.uncompressedSize;
  }
  return runs;
}
