/** SEEK_DATA / SEEK_HOLE over a file's chunk list: ranges no chunk covers are holes. */
import type { ChunkInfo } from '../rafs/index.js';

export const kSeekData = 3;
export const kSeekHole = 4;

/**
 * The resulting offset, or undefined for ENXIO (offset at or past EOF, or no data after it).
 * `chunks` are ordered by fileOffset (the reader's contract).
 */
export function seekDataHole(chunks: readonly ChunkInfo[], size: number, offset: number, whence: number): number | undefined {
  if (offset < 0 || offset >= size) return undefined;
  if (whence === kSeekData) {
    for (const c of chunks) {
      const end = Math.min(c.fileOffset + c.uncompressedSize, size);
      if (end > offset) return Math.max(offset, c.fileOffset);
    }
    return undefined;
  }
  // SEEK_HOLE: the first uncovered byte at or after offset; EOF counts as a hole.
  let pos = offset;
  for (const c of chunks) {
    const end = c.fileOffset + c.uncompressedSize;
    if (end <= pos) continue;
    if (c.fileOffset > pos) return pos;
    pos = end;
  }
  return Math.min(pos, size);
}
