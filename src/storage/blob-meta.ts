/**
 * Blob meta in the blob cache: the `<blob_id>.blob.meta` cache file
 * `[uncompressed CI, zero-padded to 4 KiB][header 4096]` (byte-compatible with upstream), and
 * fetching the CI region from the data blob when the file is missing. Parsing and decoding are
 * the RAFS layer's (src/rafs/blob/meta.ts); this module adds the storage side: backend reads,
 * atomic cache-file writes, and the header bytes kept verbatim for those writes.
 */
import { open, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { BlobChunkEntry, BlobChunkInfoArray, BlobChunkMeta, BlobMetaHeader } from '../rafs/index.js';
import { parseBlobMetaFile, parseBlobMetaRegion } from '../rafs/index.js';
import { kBlobMetaHeaderSize } from '../rafs/layout/constants.js';
import type { BlobBackend } from './backend.js';
import { errnoCode, StorageError } from './contract/errors.js';
import { lowerBoundBy } from '../util/search.js';
import type { BlobInfo } from './types.js';

/** CI buffers above this are treated as corrupt (2^24 chunks x 24 B is 384 MiB). */
export const kMaxCiSize = 512 * 1024 * 1024;

export type { BlobMetaHeader, BlobChunkEntry };

/** Size of a `.blob.meta` cache file for a CI of `ciUncompressedSize` bytes. */
export function metaFileSize(ciUncompressedSize: number): number {
  return Math.ceil(ciUncompressedSize / 4096) * 4096 + kBlobMetaHeaderSize;
}

/** Decoded CI of one blob, plus the header bytes as stored (for writing the cache file). */
export class BlobMeta {
  constructor(
    readonly header: BlobMetaHeader,
    readonly ci: BlobChunkInfoArray,
    /** The 4096-byte header as stored. */
    readonly headerBytes: Buffer,
  ) {}

  get entryCount(): number {
    return this.ci.count;
  }

  private _offsetSorted: boolean | undefined;

  /**
   * Entries in compressed-offset order, as builders write a blob's chunks (not so with ZRan,
   * whose offsets are into the gzip stream); then lowerBound() finds a range's entries.
   */
  get offsetSorted(): boolean {
    if (this._offsetSorted === undefined) {
      let prev = -1;
      let sorted = true;
      for (let i = 0; i < this.ci.count && sorted; i++) {
        const o = this.ci.compressedOffset(i);
        sorted = o >= prev;
        prev = o;
      }
      this._offsetSorted = sorted;
    }
    return this._offsetSorted;
  }

  /** The first entry index whose compressed offset is >= `offset` (offsetSorted entries only). */
  lowerBound(offset: number): number {
    return lowerBoundBy(this.ci.count, (i) => this.ci.compressedOffset(i), offset);
  }

  /** Entry `index`, or undefined out of range. */
  entry(index: number): BlobChunkEntry | undefined {
    return Number.isInteger(index) && index >= 0 && index < this.ci.count ? this.ci.get(index) : undefined;
  }

  /** The form the RAFS reader takes (`RafsImage.setBlobMeta`). */
  chunkMeta(): BlobChunkMeta {
    return { header: this.header, ci: this.ci };
  }
}

function metaError(blob: BlobInfo, err: unknown): StorageError {
  return new StorageError('ERR_BLOB_META', `blob ${blob.blobId}: ${(err as Error).message}`, { cause: err });
}

function checkCiBounds(blob: BlobInfo): void {
  const { metaCiCompressedSize: cs, metaCiUncompressedSize: us } = blob;
  if (us > kMaxCiSize || cs > us || cs <= 0 || !Number.isSafeInteger(blob.metaCiOffset)) {
    throw new StorageError('ERR_BLOB_META', `blob ${blob.blobId}: implausible CI location (offset ${blob.metaCiOffset}, sizes ${cs}/${us})`);
  }
}

/** Reads `<blob_id>.blob.meta` if it is complete and matches the blob; undefined otherwise. */
export async function readBlobMetaFile(path: string, blob: BlobInfo): Promise<BlobMeta | undefined> {
  const expected = metaFileSize(blob.metaCiUncompressedSize);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (st.size !== expected) return undefined;
    const buf = Buffer.alloc(expected);
    const { bytesRead } = await fh.read(buf, 0, expected, 0);
    if (bytesRead !== expected) return undefined;
    let parsed: BlobChunkMeta;
    try {
      parsed = parseBlobMetaFile(buf, path, blob);
    } catch {
      // A stale or foreign file is refetched and rewritten, as upstream does.
      return undefined;
    }
    return new BlobMeta(parsed.header, parsed.ci, buf.subarray(expected - kBlobMetaHeaderSize));
  } finally {
    await fh.close();
  }
}

/** Fetches the CI and its header from the data blob (`ci_compressed_size + 4096` at `ci_offset`). */
export async function fetchBlobMeta(blob: BlobInfo, backend: BlobBackend, signal?: AbortSignal): Promise<BlobMeta> {
  checkCiBounds(blob);
  const region = await backend.read(blob.blobId, blob.metaCiOffset, blob.metaCiCompressedSize + kBlobMetaHeaderSize, signal);
  let parsed: BlobChunkMeta;
  try {
    parsed = parseBlobMetaRegion(region, blob);
  } catch (err) {
    throw metaError(blob, err);
  }
  return new BlobMeta(parsed.header, parsed.ci, Buffer.from(region.subarray(blob.metaCiCompressedSize)));
}

/** Writes the cache file atomically (temp file + rename), so a reader never sees half of it. */
export async function writeBlobMetaFile(path: string, meta: BlobMeta): Promise<void> {
  const ci = meta.ci.bytes;
  const size = metaFileSize(ci.length);
  const buf = Buffer.alloc(size);
  ci.copy(buf, 0);
  meta.headerBytes.copy(buf, size - kBlobMetaHeaderSize);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, buf, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new StorageError('ERR_CACHE_FILE', `cannot write ${path}: ${errnoCode(err)}`, { cause: err });
  }
}

export function blobMetaPath(workDir: string, blobId: string): string {
  return join(workDir, `${blobId}.blob.meta`);
}
