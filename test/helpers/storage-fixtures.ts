/**
 * Storage test helpers: a synthetic blob builder (chunks compressed with the native codecs,
 * 4 KiB-aligned uncompressed offsets, blake3 digests, optional CI v2 + header) and an in-memory
 * backend that counts and can hold reads.
 */
import { blake3, compress, CompressAlgo } from '../../src/native/index.js';
import { compressorToEnum } from '../../src/rafs/index.js';
import type { RawBackend } from '../../src/storage/index.js';
import { StorageError } from '../../src/storage/index.js';
import type { BlobInfo, ChunkInfo, CompressorName } from '../../src/storage/index.js';

export interface SyntheticBlob {
  blob: Buffer;
  info: BlobInfo;
  /** One file made of all chunks in order (fileOffset = sum of previous sizes). */
  chunks: ChunkInfo[];
  /** Uncompressed data of each chunk. */
  data: Buffer[];
  /** The file's bytes (concatenated chunk data). */
  file: Buffer;
}

/** Deterministic pseudo-random bytes; `compressible` repeats a short pattern. */
export function chunkBytes(seed: number, size: number, compressible: boolean): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    if (compressible) {
      b[i] = (seed + (i % 61)) & 0xff;
    } else {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
  }
  return b;
}

export interface BuildOptions {
  blobId?: string;
  compressor?: Exclude<CompressorName, 'gzip'>;
  sizes?: number[];
  /** Append CI v2 + header after the data (as a native blob does). */
  withCi?: boolean;
  index?: number;
}

export function buildBlob(opts: BuildOptions = {}): SyntheticBlob {
  const compressor = opts.compressor ?? 'zstd';
  const sizes = opts.sizes ?? [4096, 10000, 8192, 65536, 1, 30000, 4095, 20000];
  const index = opts.index ?? 0;
  const parts: Buffer[] = [];
  const chunks: ChunkInfo[] = [];
  const data: Buffer[] = [];
  let coff = 0;
  let uoff = 0;
  let foff = 0;
  sizes.forEach((size, i) => {
    const d = chunkBytes(i + 1, size, i % 2 === 0);
    let stored = compressor === 'none' ? d : compress(compressorToEnum(compressor), d);
    let compressed = compressor !== 'none';
    if (stored.length >= d.length) {
      stored = d;
      compressed = false;
    }
    chunks.push({
      fileOffset: foff,
      blobIndex: index,
      chunkIndex: i,
      compressedOffset: coff,
      compressedSize: stored.length,
      uncompressedOffset: uoff,
      uncompressedSize: size,
      compressed,
      digest: blake3(d),
    });
    data.push(d);
    parts.push(stored);
    coff += stored.length;
    uoff += Math.ceil(size / 4096) * 4096;
    foff += size;
  });
  const dataSize = coff;
  let ci = { compressor: 'none' as CompressorName, offset: 0, csize: 0, usize: 0 };
  if (opts.withCi) {
    const raw = Buffer.alloc(chunks.length * 24);
    chunks.forEach((c, i) => {
      const flags = c.compressed ? 1n : 0n;
      raw.writeBigUInt64LE(BigInt(c.uncompressedOffset / 4096) | (BigInt(c.uncompressedSize - 1) << 32n) | (flags << 56n), i * 24);
      raw.writeBigUInt64LE(BigInt(c.compressedOffset) | (BigInt(c.compressedSize) << 40n), i * 24 + 8);
    });
    const z = compress(CompressAlgo.Zstd, raw);
    const header = Buffer.alloc(4096);
    header.writeUInt32LE(0xb10bb10b, 0);
    header.writeUInt32LE(0x1 | 0x4, 4); // ALIGNED | CHUNK_INFO_V2
    header.writeUInt32LE(CompressAlgo.Zstd, 8);
    header.writeUInt32LE(chunks.length, 12);
    header.writeBigUInt64LE(BigInt(coff), 16);
    header.writeBigUInt64LE(BigInt(z.length), 24);
    header.writeBigUInt64LE(BigInt(raw.length), 32);
    header.writeUInt32LE(0xb10bb10b, 4092);
    ci = { compressor: 'zstd', offset: coff, csize: z.length, usize: raw.length };
    parts.push(z, header);
  }
  const blob = Buffer.concat(parts);
  const info: BlobInfo = {
    index,
    blobId: opts.blobId ?? 'a'.repeat(64),
    chunkCount: chunks.length,
    compressor,
    digester: 'blake3',
    features: opts.withCi ? 0x1 | 0x4 : 0x1,
    compressedSize: dataSize,
    uncompressedSize: uoff,
    metaCiCompressor: ci.compressor,
    metaCiOffset: ci.offset,
    metaCiCompressedSize: ci.csize,
    metaCiUncompressedSize: ci.usize,
    chunkSize: 0x100000,
    tocSize: 0,
    tocDigest: Buffer.alloc(32),
  };
  return { blob, info, chunks, data, file: Buffer.concat(data) };
}

/** An in-memory backend: counts reads, can delay them or hold them until released. */
export class MemoryBackend implements RawBackend {
  readonly type = 'memory';
  reads: { blobId: string; offset: number; length: number }[] = [];
  delayMs = 0;
  private _gate: Promise<void> | undefined;
  private _open: (() => void) | undefined;
  /** Transient failures to inject before succeeding. */
  failNext = 0;

  constructor(readonly blobs: Map<string, Buffer>) {}

  hold(): void {
    this._gate = new Promise((r) => (this._open = r));
  }
  release(): void {
    this._open?.();
    this._gate = undefined;
  }

  size(blobId: string): Promise<number> {
    const b = this.blobs.get(blobId);
    if (!b) return Promise.reject(new StorageError('ERR_BLOB_NOT_FOUND', `blob ${blobId}: not found`));
    return Promise.resolve(b.length);
  }

  async tryRead(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    this.reads.push({ blobId, offset, length });
    if (this._gate) await this._gate;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    signal?.throwIfAborted();
    if (this.failNext > 0) {
      this.failNext--;
      throw new StorageError('ERR_BACKEND', `blob ${blobId}: injected failure`, { retryable: true });
    }
    const b = this.blobs.get(blobId);
    if (!b) throw new StorageError('ERR_BLOB_NOT_FOUND', `blob ${blobId}: not found`);
    if (offset + length > b.length) throw new StorageError('ERR_BLOB_SHORT', `blob ${blobId}: short`);
    return Buffer.from(b.subarray(offset, offset + length));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
