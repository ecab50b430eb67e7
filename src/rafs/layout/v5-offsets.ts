/**
 * Field offsets of the RAFS v5 on-disk structs (reference/rafs-format.md §2.3). Everything in a
 * v5 bootstrap is 8-byte aligned.
 */

export const kV5Alignment = 8;

/** RafsV5SuperBlock (8192 B at 0). */
export const kV5Sb = {
  magic: 0,
  fsVersion: 4,
  sbSize: 8,
  blockSize: 12,
  flags: 16,
  inodesCount: 24,
  inodeTableOffset: 32,
  prefetchTableOffset: 40,
  blobTableOffset: 48,
  inodeTableEntries: 56,
  prefetchTableEntries: 60,
  blobTableSize: 64,
  extendedBlobTableEntries: 68,
  extendedBlobTableOffset: 72,
} as const;

/** RafsV5Inode (128 B). */
export const kV5Inode = {
  digest: 0,
  parent: 32,
  ino: 40,
  uid: 48,
  gid: 52,
  projid: 56,
  mode: 60,
  size: 64,
  blocks: 72,
  flags: 80,
  nlink: 88,
  childIndex: 92,
  childCount: 96,
  nameSize: 100,
  symlinkSize: 102,
  rdev: 104,
  mtimeNsec: 108,
  mtime: 112,
} as const;

/** RafsV5ChunkInfo (80 B); also the RAFS v6 chunk table row. */
export const kV5Chunk = {
  digest: 0,
  blobIndex: 32,
  flags: 36,
  compressedSize: 40,
  uncompressedSize: 44,
  compressedOffset: 48,
  uncompressedOffset: 56,
  fileOffset: 64,
  index: 72,
  crc32: 76,
} as const;

/** RafsV5ExtBlobEntry (64 B). */
export const kV5ExtBlob = { chunkCount: 0, features: 4, uncompressedSize: 8, compressedSize: 16 } as const;
