/**
 * Field offsets of the blob-side structs (reference/rafs-format.md §2.2): the 4096-byte blob meta
 * header, ZRan/batch contexts, TOC entries and the tar header fields we read.
 */

/** BlobCompressionContextHeader (4096 B). */
export const kBlobMetaHdr = {
  magic: 0,
  features: 4,
  ciCompressor: 8,
  ciEntries: 12,
  ciOffset: 16,
  ciCompressedSize: 24,
  ciUncompressedSize: 32,
  ciZranOffset: 40,
  ciZranSize: 48,
  ciZranCount: 56,
  magic2: 4092,
} as const;

/** BlobChunkInfoV2 `uncomp_info` flag byte (bits 56..63). */
export const kCiV2Flags = {
  COMPRESSED: 0x01,
  ZRAN: 0x02,
  BATCH: 0x04,
  ENCRYPTED: 0x08,
  HAS_CRC32: 0x10,
} as const;
export const kCiV2ValidFlags = 0x1f;

/** ZranInflateContext (40 B). */
export const kZranCtx = {
  size: 40,
  inOffset: 0,
  outOffset: 8,
  dictOffset: 16,
  inLen: 24,
  outLen: 28,
  dictSize: 32,
  ctxByte: 36,
  ctxBits: 37,
} as const;

/** BatchInflateContext (40 B). */
export const kBatchCtx = { size: 40, compressedSize: 0, uncompressedBatchSize: 4 } as const;

/** TocEntry (128 B). */
export const kTocEntry = {
  flags: 0,
  name: 8,
  nameLen: 16,
  digest: 24,
  compressedOffset: 56,
  compressedSize: 64,
  uncompressedSize: 72,
} as const;

/** The TOC location (content + its tar header) must be 512..64 KiB and a multiple of 128. */
export const kTocMinSize = 512;
export const kTocMaxSize = 0x10000;
/** How much of a blob's tail to read to find the TOC without metadata. */
export const kTocTailSize = 0x1000;

/** POSIX/GNU tar header fields. */
export const kTarHdr = {
  name: 0,
  nameLen: 100,
  size: 124,
  sizeLen: 12,
  checksum: 148,
  checksumLen: 8,
  typeflag: 156,
  magic: 257,
} as const;
