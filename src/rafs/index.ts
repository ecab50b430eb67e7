/**
 * The RAFS layer: readers for RAFS v5 and v6 bootstraps and the blob-side formats (blob meta,
 * TOC, chunk codecs and digests). Neighbours: `fs/` (FUSE semantics) and `storage/` (backends,
 * blob cache) above; `native/` (lz4/zstd/BLAKE3) below. The builder lives in `./builder/`.
 *
 * Opening an image reads the bootstrap into one Buffer and decodes inodes, dirents, xattrs and
 * chunk indexes on demand; nothing is materialised per inode, so 100k-file images open in
 * milliseconds and use about the bootstrap's size in memory. Every number read from a file is
 * bounds-checked: bad input raises `RafsError` (stable `code`, `errno`, message naming the file,
 * the structure and the offset), never a crash, hang or out-of-range read.
 *
 * ## Blob meta for v6 INLINED_CHUNK_DIGEST images
 *
 * When `super.inlinedChunkDigest` is set, a file's chunk sizes/offsets/digests are not in the
 * bootstrap: they are in each blob's meta (the CI array, `blob.meta`, plus `blob.digest`). The
 * reader gets it, in this order, from:
 *  1. `image.setBlobMeta(blobIndex, meta)`: the storage layer parses what it has —
 *     `parseBlobMetaFile(<cache>/<blob_id>.blob.meta)` or, fetched from the backend,
 *     `parseBlobMetaRegion(bytes at blob.metaCiOffset, length metaCiCompressedSize + 4096)` — and
 *     sets `meta.digests` from `blob.digest` (TOC entry, or `<blob_id>.blob.digest`) if it has it;
 *     `image.blobsNeedingMeta()` lists the blobs still missing;
 *  2. `openBootstrap(path, { blobMetaProvider })`: called synchronously on first need per blob;
 *  3. `openBootstrap(path, { blobDir })`: `<dir>/<blob_id>.blob.meta` (+ `.blob.digest`) or the
 *     data blob `<dir>/<blob_id>` itself (CI at ci_offset, digests via its TOC);
 *  4. for an inline-meta blob opened as the bootstrap, that blob file itself;
 *  5. with `openBootstrap(path, { chunkTableFallback: true })` (nydus-image check/inspect), the
 *     bootstrap's own chunk info table, which upstream and our builder write for these images too.
 * Without any of them `chunks()` throws `ERR_RAFS_BLOB_META_REQUIRED`; it never guesses. A
 * `ChunkInfo.digest` of all zeros means "digest not available" (meta supplied without digests).
 *
 * ## Inode references and readdir offsets
 *
 * v6 refs are nids (FUSE inode numbers); v5 refs are inode-table indexes (root = 1) and
 * `attr.ino` is the shared i_ino of hardlinks. readDir offsets: v5 0 ".", 1 "..", 2+i child i;
 * v6 the byte position of the dirent (block × block size + index × 12). Both are stable and
 * resumable at any offset.
 *
 * ## Not supported yet (ERR_RAFS_UNSUPPORTED)
 *
 * ZRan (OCI tar.gz reference), batch and encrypted chunks/blob meta; shared EROFS xattrs; regular
 * files with flat (non-chunked) v6 data. Their metadata still parses (e.g. ZRan `.blob.meta`
 * headers, CI entries and inflate contexts).
 */
export type { BlobInfo, ChunkInfo, CompressorName, DigesterName, DirEntry, InodeAttr, InodeRef, RafsImage, RafsSuper } from './reader/types.js';
export { openBootstrap, openBootstrapBuffer, metaPathStem, type OpenOptions } from './reader/open.js';
export { V5Image } from './reader/v5-image.js';
export { V6Image } from './reader/v6-image.js';
export { DT_BLK, DT_CHR, DT_DIR, DT_FIFO, DT_LNK, DT_REG, DT_SOCK, DT_UNKNOWN, isDotOrDotDot } from './reader/common.js';
export { RafsError, kRafsErrorCodes, type RafsErrorCode } from './layout/errors.js';

// Blob side.
export {
  BlobChunkInfoArray,
  ciEntrySize,
  decodeChunkInfoArray,
  decodeZranContexts,
  parseBlobMetaFile,
  parseBlobMetaHeader,
  parseBlobMetaRegion,
  type BlobChunkEntry,
  type BlobChunkMeta,
  type BlobMetaHeader,
  type ZranContext,
} from './blob/meta.js';
export { extractTocEntry, findToc, getTocEntry, parseTarHeader, parseToc, tocDigest, type TarHeader, type TocEntry, type TocLocation } from './blob/toc.js';
export {
  chunkDigest,
  compressChunk,
  compressorFromEnum,
  compressorToEnum,
  decodeChunk,
  decodeChunkInto,
  digesterFromEnum,
  digesterToEnum,
  sha256,
  type WritableCompressor,
} from './blob/codec.js';
export {
  BlobFile,
  blobDirMetaProvider,
  bufferSource,
  extractInlineBootstrap,
  loadBlobMetaFromBlob,
  readBlobToc,
  readChunkData,
  type BlobMetaProvider,
  type BlobSource,
} from './blob/blob-file.js';
