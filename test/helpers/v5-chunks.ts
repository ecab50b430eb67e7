/**
 * Storage tests' view of a RAFS image: its blobs, every regular file's chunk list, and the
 * unique chunks, taken from the RAFS reader (storage itself never parses metadata).
 */
import type { BlobInfo, ChunkInfo } from '../../src/rafs/index.js';
import { openBootstrap } from '../../src/rafs/index.js';

export interface V5Image {
  blobs: BlobInfo[];
  /** Unique chunks by (blob index, chunk index), with file offsets of the first file using them. */
  chunks: ChunkInfo[];
  /** Regular files: chunk lists in file order, plus size. */
  files: { ino: number; size: number; chunks: ChunkInfo[] }[];
}

export function readV5Image(path: string): V5Image {
  const img = openBootstrap(path);
  try {
    const files: V5Image['files'] = [];
    const seen = new Map<string, ChunkInfo>();
    img.walk((_path, ref, a) => {
      if ((a.mode & 0o170000) !== 0o100000) return;
      const chunks = img.chunks(ref);
      files.push({ ino: a.ino, size: a.size, chunks });
      for (const c of chunks) {
        const key = `${c.blobIndex}:${c.chunkIndex}`;
        if (!seen.has(key)) seen.set(key, c);
      }
    });
    return { blobs: [...img.blobs], chunks: [...seen.values()], files };
  } finally {
    img.close();
  }
}
