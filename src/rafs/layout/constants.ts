/**
 * RAFS on-disk constants shared by the readers (src/rafs/reader), the builder
 * (src/rafs/builder) and the blob meta/TOC code. Values and meanings: reference/rafs-format.md.
 * Struct layouts live next to the code that encodes or decodes them; this file holds only the
 * numbers both sides must agree on.
 */

export const kRafsV5 = 0x500;
export const kRafsV6 = 0x600;

// ---- Algorithms (u32 enums in blob tables) ----
export const enum Compressor {
  None = 0,
  Lz4Block = 1,
  Gzip = 2,
  Zstd = 3,
}
export const enum Digester {
  Blake3 = 0,
  Sha256 = 1,
}
export const enum Cipher {
  None = 0,
  Aes128Xts = 1,
  Aes256Xts = 2,
  Aes256Gcm = 3,
}

// ---- RafsSuperFlags (u64; v5 s_flags, v6 ext-sb s_flags); all bits fit in 32 ----
export const kSuperFlags = {
  COMPRESSION_NONE: 0x1,
  COMPRESSION_LZ4: 0x2,
  HASH_BLAKE3: 0x4,
  HASH_SHA256: 0x8,
  EXPLICIT_UID_GID: 0x10,
  HAS_XATTR: 0x20,
  COMPRESSION_GZIP: 0x40,
  COMPRESSION_ZSTD: 0x80,
  INLINED_CHUNK_DIGEST: 0x100,
  TARFS_MODE: 0x200,
  ENCRYPTION_NONE: 0x0100_0000,
  ENCRYPTION_ASE_128_XTS: 0x0200_0000,
} as const;

// ---- BlobFeatures (u32) ----
export const kBlobFeatures = {
  ALIGNED: 0x1,
  INLINED_FS_META: 0x2,
  CHUNK_INFO_V2: 0x4,
  ZRAN: 0x8,
  SEPARATE: 0x10,
  INLINED_CHUNK_DIGEST: 0x20,
  TARFS: 0x40,
  BATCH: 0x80,
  ENCRYPTED: 0x100,
  IS_CHUNKDICT_GENERATED: 0x200,
  IS_SEPARATED_WITH_PREFETCH_FILES: 0x400,
  EXTERNAL: 0x800,
  HAS_TAR_HEADER: 0x1000_0000,
  HAS_TOC: 0x2000_0000,
  CAP_TAR_TOC: 0x4000_0000,
  V5_NO_EXT_BLOB_TABLE: 0x8000_0000,
} as const;

// ---- BlobChunkFlags (v5/v6 chunk table rows) ----
export const kChunkFlags = {
  COMPRESSED: 0x1,
  HOLECHUNK: 0x2,
  ENCRYPTED: 0x4,
  BATCH: 0x8,
  HAS_CRC32: 0x10,
} as const;

// ---- Chunk size rules ----
export const kDefaultChunkSize = 0x100000;
export const kMinChunkSize = 0x1000;
export const kMaxChunkSize = 0x1000000;
export const kMaxChunksPerBlob = 1 << 24;
export const kMaxNameLen = 255;

// ---- RAFS v6 (EROFS-compatible) ----
export const kV6SuperBlockOffset = 1024;
export const kV6SuperBlockSize = 128;
export const kV6SuperBlockExtSize = 256;
export const kV6Magic = 0xe0f5e1e2;
export const kV6FeatureCompatRafsV6 = 0x4000_0000;
export const kV6FeatureIncompatRequired = 0x0c; // CHUNKED_FILE | DEVICE_TABLE
export const kV6DevtSlotOff = 11;
export const kV6DeviceSlotSize = 128;
export const kV6BlobEntrySize = 256;
export const kV6BlockSize = 4096;
export const kV6TarfsBlockSize = 512;
export const kV6InodeSlotSize = 32;
export const kV6CompactInodeSize = 32;
export const kV6ExtendedInodeSize = 64;
export const kV6DirentSize = 12;
export const kV6ChunkAddrSize = 8;
export const kV6XattrHeaderSize = 12;
export const kV6ChunkHeaderIndexes = 0x20;
export const kV6BlockSegmentAlignment = 0x80000;

export const enum V6DataLayout {
  FlatPlain = 0,
  FlatInline = 2,
  ChunkBased = 4,
}

/** EROFS xattr name prefix indexes (only these namespaces exist in RAFS v6). */
export const kV6XattrPrefixes: readonly (readonly [number, string])[] = [
  [1, 'user.'],
  [2, 'system.posix_acl_access'],
  [3, 'system.posix_acl_default'],
  [4, 'trusted.'],
  [6, 'security.'],
];

// ---- RAFS v5 ----
export const kV5Magic = 0x52414653;
export const kV5SuperBlockSize = 8192;
export const kV5InodeSize = 128;
export const kV5ChunkInfoSize = 80; // also the v6 chunk table row
export const kV5ExtBlobEntrySize = 64;
export const kV5InodeFlags = {
  SYMLINK: 1,
  HARDLINK: 2,
  XATTR: 4,
  HAS_HOLE: 8,
} as const;

// ---- Blob meta (compression info) and TOC ----
export const kBlobMetaMagic = 0xb10bb10b;
export const kBlobMetaHeaderSize = 4096;
export const kChunkInfoV1Size = 16;
export const kChunkInfoV2Size = 24;
export const kTocEntrySize = 128;
export const kTarHeaderSize = 512;
export const kTocEntryFlags = {
  NONE: 0x1,
  ZSTD: 0x2,
  LZ4_BLOCK: 0x4,
} as const;
export const kTocNames = {
  blob: 'image.blob',
  boot: 'image.boot',
  meta: 'blob.meta',
  metaHeader: 'blob.meta.header',
  digest: 'blob.digest',
  toc: 'rafs.blob.toc',
} as const;

/** File type of a dirent (EROFS/Linux DT_* order used by RAFS v6 `e_file_type`). */
export const enum V6FileType {
  Unknown = 0,
  Reg = 1,
  Dir = 2,
  Chr = 3,
  Blk = 4,
  Fifo = 5,
  Sock = 6,
  Symlink = 7,
}
