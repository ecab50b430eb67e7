/**
 * Blob meta ("CI", compression info; rafs-format.md §2.2): the 4096-byte header, chunk info
 * entries v1 (16 B) and v2 (24 B), and the `<blob_id>.blob.meta` cache file
 * `[uncompressed CI, zero-padded to 4 KiB][header 4096]`, byte-compatible with upstream.
 *
 * Written against the documented layout; the RAFS reader's parseBlobMetaHeader /
 * decodeChunkInfoArray can replace the decoders here once both are on main.
 */
import { open, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { kBlobFeatures, kBlobMetaHeaderSize, kBlobMetaMagic, kChunkInfoV1Size, kChunkInfoV2Size } from '../rafs/layout/constants.js';
import type { BlobBackend } from './backend.js';
import { compressorCode, decodeChunk } from './codec.js';
import { errnoCode, StorageError } from './errors.js';
import type { BlobInfo } from './types.js';

/** CI buffers above this are treated as corrupt (2^24 chunks x 24 B is 384 MiB). */
export const kMaxCiSize = 512 * 1024 * 1024;

export interface BlobMetaHeader {
  features: number;
  ciCompressor: number;
  ciEntries: number;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  zranOffset: number;
  zranSize: number;
  zranCount: number;
}

/** v2 CI entry flags (uncomp_info bits 56..63). */
export const kCiFlags = { COMPRESSED: 0x01, ZRAN: 0x02, BATCH: 0x04, ENCRYPTED: 0x08, HAS_CRC32: 0x10 } as const;

export interface CiEntry {
  index: number;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  /** v2 flags (0 for v1). */
  flags: number;
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`value at offset ${at} exceeds 2^53`);
  return Number(v);
}

export function parseBlobMetaHeader(buf: Buffer, what = 'blob meta header'): BlobMetaHeader {
  if (buf.length !== kBlobMetaHeaderSize) throw new StorageError('ERR_BLOB_META', `${what}: ${buf.length} bytes, expected ${kBlobMetaHeaderSize}`);
  if (buf.readUInt32LE(0) !== kBlobMetaMagic || buf.readUInt32LE(kBlobMetaHeaderSize - 4) !== kBlobMetaMagic) {
    throw new StorageError('ERR_BLOB_META', `${what}: bad magic`);
  }
  try {
    return {
      features: buf.readUInt32LE(4),
      ciCompressor: buf.readUInt32LE(8),
      ciEntries: buf.readUInt32LE(12),
      ciOffset: u64(buf, 16),
      ciCompressedSize: u64(buf, 24),
      ciUncompressedSize: u64(buf, 32),
      zranOffset: u64(buf, 40),
      zranSize: u64(buf, 48),
      zranCount: buf.readUInt32LE(56),
    };
  } catch (err) {
    throw new StorageError('ERR_BLOB_META', `${what}: ${(err as Error).message}`);
  }
}

/** Why the header disagrees with the blob table entry, or undefined when they agree. */
export function headerMismatch(h: BlobMetaHeader, blob: BlobInfo): string | undefined {
  if (h.ciEntries !== blob.chunkCount) return `header has ${h.ciEntries} entries, blob table says ${blob.chunkCount} chunks`;
  if (h.ciCompressor !== compressorCode(blob.metaCiCompressor)) return `CI compressor ${h.ciCompressor} differs from the blob table`;
  if (h.ciOffset !== blob.metaCiOffset) return `CI offset ${h.ciOffset} differs from the blob table (${blob.metaCiOffset})`;
  if (h.ciCompressedSize !== blob.metaCiCompressedSize) return `CI compressed size ${h.ciCompressedSize} differs from the blob table`;
  if (h.ciUncompressedSize !== blob.metaCiUncompressedSize) return `CI size ${h.ciUncompressedSize} differs from the blob table`;
  const v2 = (h.features & kBlobFeatures.CHUNK_INFO_V2) !== 0;
  const need = h.ciEntries * (v2 ? kChunkInfoV2Size : kChunkInfoV1Size);
  if (h.ciUncompressedSize < need) return `CI size ${h.ciUncompressedSize} is too small for ${h.ciEntries} entries`;
  return undefined;
}

export function metaFileSize(ciUncompressedSize: number): number {
  return Math.ceil(ciUncompressedSize / 4096) * 4096 + kBlobMetaHeaderSize;
}

/** Decoded CI of one blob: random access to entries, plus the raw bytes for the reader. */
export class BlobMeta {
  readonly v2: boolean;
  readonly entrySize: number;

  constructor(
    readonly header: BlobMetaHeader,
    /** Uncompressed CI (unpadded). */
    readonly ci: Buffer,
    /** The 4096-byte header as stored. */
    readonly headerBytes: Buffer,
  ) {
    this.v2 = (header.features & kBlobFeatures.CHUNK_INFO_V2) !== 0;
    this.entrySize = this.v2 ? kChunkInfoV2Size : kChunkInfoV1Size;
  }

  get entryCount(): number {
    return this.header.ciEntries;
  }

  entry(index: number): CiEntry | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.header.ciEntries) return undefined;
    const at = index * this.entrySize;
    const u = this.ci.readBigUInt64LE(at);
    const c = this.ci.readBigUInt64LE(at + 8);
    if (this.v2) {
      const uncompressedOffset = Number(u & 0xffffffffn) * 4096;
      const uncompressedSize = Number((u >> 32n) & 0xffffffn) + 1;
      const flags = Number(u >> 56n);
      return {
        index,
        uncompressedOffset,
        uncompressedSize,
        compressedOffset: Number(c & 0xffffffffffn),
        compressedSize: Number(c >> 40n),
        compressed: (flags & kCiFlags.COMPRESSED) !== 0,
        flags,
      };
    }
    const uncompressedSize = Number((((u >> 8n) & 0xfn) << 20n) | (u >> 44n)) + 1;
    const compressedSize = Number((((c >> 40n) & 0xfn) << 20n) | (c >> 44n)) + 1;
    return {
      index,
      uncompressedOffset: Number(u & 0x0ffffffff000n),
      uncompressedSize,
      compressedOffset: Number(c & 0xffffffffffn),
      compressedSize,
      compressed: compressedSize !== uncompressedSize,
      flags: 0,
    };
  }
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
    const headerBytes = buf.subarray(expected - kBlobMetaHeaderSize);
    let header: BlobMetaHeader;
    try {
      header = parseBlobMetaHeader(headerBytes);
    } catch {
      return undefined;
    }
    if (headerMismatch(header, blob) !== undefined) return undefined;
    return new BlobMeta(header, buf.subarray(0, blob.metaCiUncompressedSize), headerBytes);
  } finally {
    await fh.close();
  }
}

/** Fetches the CI and its header from the data blob (`ci_compressed_size + 4096` at `ci_offset`). */
export async function fetchBlobMeta(blob: BlobInfo, backend: BlobBackend, signal?: AbortSignal): Promise<BlobMeta> {
  checkCiBounds(blob);
  const raw = await backend.read(blob.blobId, blob.metaCiOffset, blob.metaCiCompressedSize + kBlobMetaHeaderSize, signal);
  const headerBytes = Buffer.from(raw.subarray(blob.metaCiCompressedSize));
  const header = parseBlobMetaHeader(headerBytes, `blob ${blob.blobId}: blob meta header at offset ${blob.metaCiOffset + blob.metaCiCompressedSize}`);
  const mismatch = headerMismatch(header, blob);
  if (mismatch) throw new StorageError('ERR_BLOB_META', `blob ${blob.blobId}: ${mismatch}`);
  let ci: Buffer;
  try {
    ci = Buffer.from(decodeChunk(blob.metaCiCompressor, raw.subarray(0, blob.metaCiCompressedSize), blob.metaCiUncompressedSize));
  } catch (err) {
    throw new StorageError('ERR_BLOB_META', `blob ${blob.blobId}: cannot decompress the CI (${blob.metaCiCompressor}): ${(err as Error).message}`);
  }
  return new BlobMeta(header, ci, headerBytes);
}

/** Writes the cache file atomically (temp file + rename), so a reader never sees half of it. */
export async function writeBlobMetaFile(path: string, meta: BlobMeta): Promise<void> {
  const size = metaFileSize(meta.ci.length);
  const buf = Buffer.alloc(size);
  meta.ci.copy(buf, 0);
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
