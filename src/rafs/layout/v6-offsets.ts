/**
 * Field offsets of the RAFS v6 on-disk structs (reference/rafs-format.md §2.1). Sizes are in
 * constants.ts; these are the `@N` columns, named after the upstream fields, so readers and
 * writers index a Buffer the same way.
 */

/** RafsV6SuperBlock (128 B at 1024). */
export const kV6Sb = {
  magic: 0,
  checksum: 4,
  featureCompat: 8,
  blkszbits: 12,
  extslots: 13,
  rootNid: 14,
  inos: 16,
  buildTime: 24,
  buildTimeNsec: 32,
  blocks: 36,
  metaBlkaddr: 40,
  xattrBlkaddr: 44,
  uuid: 48,
  volumeName: 64,
  featureIncompat: 80,
  u: 84,
  extraDevices: 86,
  devtSlotoff: 88,
} as const;

/** RafsV6SuperBlockExt (256 B at 1152). */
export const kV6SbExt = {
  offset: 1152,
  flags: 0,
  blobTableOffset: 8,
  blobTableSize: 16,
  chunkSize: 20,
  chunkTableOffset: 24,
  chunkTableSize: 32,
  prefetchTableOffset: 40,
  prefetchTableSize: 48,
} as const;

/** RafsV6Device (128 B per slot). */
export const kV6Device = { blobId: 0, blobIdLen: 64, blocks: 64, mappedBlkaddr: 68 } as const;

/** RafsV6Blob (256 B blob table entry). */
export const kV6Blob = {
  blobId: 0,
  blobIdLen: 64,
  blobIndex: 64,
  chunkSize: 68,
  chunkCount: 72,
  compressionAlgo: 76,
  digestAlgo: 80,
  features: 84,
  compressedSize: 88,
  uncompressedSize: 96,
  blobTocSize: 104,
  ciCompressor: 108,
  ciOffset: 112,
  ciCompressedSize: 120,
  ciUncompressedSize: 128,
  blobTocDigest: 136,
  blobMetaDigest: 168,
  blobMetaSize: 200,
  cipherIv: 208,
  cipherAlgo: 216,
} as const;

/** Compact (32 B) and extended (64 B) inodes share @0..@23. */
export const kV6Inode = {
  format: 0,
  xattrIcount: 2,
  mode: 4,
  // compact
  cNlink: 6,
  cSize: 8,
  u: 16,
  ino: 20,
  cUid: 24,
  cGid: 26,
  // extended
  eSize: 8,
  eUid: 24,
  eGid: 28,
  eMtime: 32,
  eMtimeNsec: 40,
  eNlink: 44,
} as const;

/** i_format: bit 0 = extended, bits 1..3 = data layout; any other bit is invalid. */
export const kV6FormatValidMask = 0x0f;
export const kV6ChunkFormatIndexes = 0x20;
export const kV6ChunkFormatBlkbitsMask = 0x1f;
/** A hole chunk in an EROFS chunk index: blkaddr = EROFS_NULL_ADDR. */
export const kV6NullAddr = 0xffffffff;

/** RafsV6Dirent (12 B). */
export const kV6Dirent = { nid: 0, nameoff: 8, fileType: 10 } as const;

/** RafsV6InodeChunkAddr (8 B). */
export const kV6ChunkAddr = { blobAddrLo: 0, blobAddrHi: 2, blkAddr: 4 } as const;

/** Inline xattr entry header (4 B) followed by the name suffix and the value, padded to 4. */
export const kV6XattrEntry = { nameLen: 0, nameIndex: 1, valueSize: 2, headerSize: 4 } as const;
export const kV6XattrSharedCount = 4; // u8 in the 12-byte ibody header
