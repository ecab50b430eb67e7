/**
 * A minimal, independent RAFS v5 walker for storage tests: the blob table and every regular
 * file's chunk records (RafsV5ChunkInfo, 80 B) of a v5 bootstrap, per rafs-format.md §2.3.
 * Only what the tests need; the real reader lives in src/rafs.
 */
import { readFileSync } from 'node:fs';

import type { BlobInfo, ChunkInfo } from '../../src/storage/index.js';

export interface V5Image {
  blobs: BlobInfo[];
  /** Unique chunks by (blob index, chunk index), with file offsets of the first file using them. */
  chunks: ChunkInfo[];
  /** Regular files: chunk lists in file order, plus size. */
  files: { ino: number; size: number; chunks: ChunkInfo[] }[];
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

export function readV5Image(path: string): V5Image {
  const b = readFileSync(path);
  if (b.readUInt32LE(0) !== 0x52414653) throw new Error('not a v5 bootstrap');
  const flags = Number(b.readBigUInt64LE(16));
  const compressor = flags & 0x80 ? 'zstd' : flags & 0x40 ? 'gzip' : flags & 0x2 ? 'lz4_block' : 'none';
  const digester = flags & 0x8 ? 'sha256' : 'blake3';
  const inodeTable = Number(b.readBigUInt64LE(32));
  const inodeCount = b.readUInt32LE(56);
  const blobTable = Number(b.readBigUInt64LE(48));
  const blobTableSize = b.readUInt32LE(64);
  const extCount = b.readUInt32LE(68);
  const extTable = Number(b.readBigUInt64LE(72));

  const ids: string[] = [];
  let p = blobTable;
  const end = blobTable + blobTableSize;
  while (p + 8 < end) {
    let q = p + 8;
    while (q < end && b[q] !== 0) q++;
    const id = b.subarray(p + 8, q).toString();
    if (id.length === 0) break;
    ids.push(id);
    p = q + 1;
  }
  const blobs: BlobInfo[] = ids.map((blobId, index) => {
    const e = index < extCount ? extTable + index * 64 : -1;
    return {
      index,
      blobId,
      chunkCount: e >= 0 ? b.readUInt32LE(e) : 0,
      compressor,
      digester,
      features: e >= 0 ? b.readUInt32LE(e + 4) : 0x8000_0000,
      uncompressedSize: e >= 0 ? Number(b.readBigUInt64LE(e + 8)) : 0,
      compressedSize: e >= 0 ? Number(b.readBigUInt64LE(e + 16)) : 0,
      metaCiCompressor: 'none',
      metaCiOffset: 0,
      metaCiCompressedSize: 0,
      metaCiUncompressedSize: 0,
    };
  });

  const seen = new Map<string, ChunkInfo>();
  const files: V5Image['files'] = [];
  for (let ino = 1; ino <= inodeCount; ino++) {
    const off = b.readUInt32LE(inodeTable + (ino - 1) * 4) << 3;
    if (off === 0) continue;
    const mode = b.readUInt32LE(off + 60);
    if ((mode & 0o170000) !== 0o100000) continue;
    const iflags = Number(b.readBigUInt64LE(off + 80));
    const childCount = b.readUInt32LE(off + 96);
    const nameSize = b.readUInt16LE(off + 100);
    const symSize = b.readUInt16LE(off + 102);
    let q = off + 128 + align8(nameSize) + align8(symSize);
    if (iflags & 4) q += 8 + align8(Number(b.readBigUInt64LE(q)));
    const list: ChunkInfo[] = [];
    for (let i = 0; i < childCount; i++, q += 80) {
      const c: ChunkInfo = {
        digest: Buffer.from(b.subarray(q, q + 32)),
        blobIndex: b.readUInt32LE(q + 32),
        compressed: (b.readUInt32LE(q + 36) & 1) !== 0,
        compressedSize: b.readUInt32LE(q + 40),
        uncompressedSize: b.readUInt32LE(q + 44),
        compressedOffset: Number(b.readBigUInt64LE(q + 48)),
        uncompressedOffset: Number(b.readBigUInt64LE(q + 56)),
        fileOffset: Number(b.readBigUInt64LE(q + 64)),
        chunkIndex: b.readUInt32LE(q + 72),
      };
      list.push(c);
      const key = `${c.blobIndex}/${c.chunkIndex}`;
      if (!seen.has(key)) seen.set(key, c);
    }
    files.push({ ino, size: Number(b.readBigUInt64LE(off + 64)), chunks: list });
  }
  return { blobs, chunks: [...seen.values()], files };
}
