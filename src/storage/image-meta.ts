/**
 * Blob meta for the RAFS reader. Images with INLINED_CHUNK_DIGEST keep chunk sizes, offsets and
 * digests in the blobs (the CI array and the `blob.digest` TOC entry), not in the bootstrap, so
 * before the first `chunks()` the reader must be given each blob's meta:
 * - blobcache: the `<blob_id>.blob.meta` cache file the blob cache keeps (upstream layout);
 * - dummycache: the CI region fetched from the backend;
 * - digests (only needed to validate chunks): the `blob.digest` TOC entry, fetched once and kept
 *   as `<blob_id>.blob.digest` (chunk_count × 32 B) in the cache directory.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { BlobChunkMeta, BlobInfo, RafsImage } from '../rafs/index.js';
import { extractTocEntry, findToc, getTocEntry, parseBlobMetaRegion, parseToc } from '../rafs/index.js';
import { kBlobFeatures, kBlobMetaHeaderSize, kTocNames } from '../rafs/layout/constants.js';
import type { Logger } from '../util/logger.js';
import type { BlobBackend } from './backend.js';
import { CachedBlob } from './blob-cache.js';
import { errnoCode, StorageError } from './contract/errors.js';
import type { ImageStorage } from './image-storage.js';

const kTocTail = 4096;

async function fetchDigests(blob: BlobInfo, backend: BlobBackend): Promise<Buffer | undefined> {
  if ((blob.features & kBlobFeatures.HAS_TOC) === 0 && blob.tocSize === 0) return undefined;
  const size = await backend.size(blob.blobId);
  let loc;
  if (blob.tocSize > 0 && blob.tocSize <= size) {
    loc = { offset: size - blob.tocSize, size: blob.tocSize, digest: blob.tocDigest.some((b) => b !== 0) ? blob.tocDigest : undefined };
  } else {
    const tailLen = Math.min(kTocTail, size - (size % 128));
    loc = findToc(await backend.read(blob.blobId, size - tailLen, tailLen), size, blob.blobId);
  }
  const toc = parseToc(await backend.read(blob.blobId, loc.offset, loc.size), loc, blob.blobId);
  const entry = getTocEntry(toc, kTocNames.digest);
  if (!entry) return undefined;
  const raw = await backend.read(blob.blobId, entry.compressedOffset, entry.compressedSize);
  const read = (off: number, len: number): Buffer => raw.subarray(off - entry.compressedOffset, off - entry.compressedOffset + len);
  const digests = extractTocEntry(read, entry, size, blob.blobId, blob.chunkCount * 32);
  if (digests.length !== blob.chunkCount * 32) {
    throw new StorageError('ERR_BLOB_META', `blob ${blob.blobId}: blob.digest holds ${digests.length} bytes for ${blob.chunkCount} chunks`);
  }
  return digests;
}

async function cachedDigests(workDir: string | undefined, blob: BlobInfo, backend: BlobBackend): Promise<Buffer | undefined> {
  const path = workDir ? join(workDir, `${blob.blobId}.blob.digest`) : undefined;
  if (path) {
    const have = await readFile(path).catch(() => undefined);
    if (have?.length === blob.chunkCount * 32) return have;
  }
  const digests = await fetchDigests(blob, backend);
  if (digests && path) {
    const tmp = `${path}.tmp-${process.pid}`;
    try {
      await writeFile(tmp, digests);
      await rename(tmp, path);
    } catch (err) {
      throw new StorageError('ERR_CACHE_FILE', `cannot write ${path}: ${errnoCode(err)}`, { cause: err });
    }
  }
  return digests;
}

/** Gives the reader the meta of every blob it still needs (see the file comment). */
export async function supplyBlobMeta(
  image: RafsImage,
  storage: ImageStorage,
  backend: BlobBackend,
  opts: { validate: boolean; workDir: string | undefined; log: Logger },
): Promise<void> {
  for (const index of image.blobsNeedingMeta()) {
    const info = image.blobs[index];
    if (!info) continue;
    const source = storage.blob(index);
    let meta: BlobChunkMeta;
    if (source instanceof CachedBlob && source.meta !== undefined) {
      meta = source.meta.chunkMeta();
    } else {
      const region = await backend.read(info.blobId, info.metaCiOffset, info.metaCiCompressedSize + kBlobMetaHeaderSize);
      meta = parseBlobMetaRegion(region, info);
    }
    if (opts.validate) {
      meta.digests = await cachedDigests(opts.workDir, info, backend);
      if (!meta.digests) opts.log.warn(`blob ${info.blobId} carries no chunk digests; its chunks cannot be validated`);
    }
    image.setBlobMeta(index, meta);
  }
}
