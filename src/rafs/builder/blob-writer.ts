/**
 * Writes the native data blob: deduplicated, individually compressed chunks, then (as upstream
 * 2.2+ does) the blob meta trailer — tar header "image.blob", compressed chunk-info array and its
 * 4096-byte header, chunk digests, optional inline bootstrap, TOC. The whole file is hashed as it
 * is written so the blob id (sha256 of the file) is known the moment it is closed.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

import { kBlobFeatures, kBlobMetaHeaderSize, kTarHeaderSize, kTocNames } from '../layout/constants.js';
import { encodeBlobMetaHeader, encodeChunkInfoV1, encodeToc, gnuTarHeader, type TocEntry } from './blob-format.js';
import { chunkDigest, compressChunk, compressorToEnum, createDigestHasher, sha256 } from '../blob/codec.js';
import { kPoolMinBytes, type ChunkPool, type ChunkResult } from './chunk-pool.js';
import { BuildError, type BlobChunk, type WritableCompressor, type DigesterName } from './types.js';

const kMaxChunksPerBlob = 0xff_ffff; // v6 chunk addresses carry a 24-bit chunk index
const kStageSize = 4 << 20;

export interface BlobWriterOptions {
  path: string;
  compressor: WritableCompressor;
  digester: DigesterName;
  /** Round uncompressed offsets up to 4 KiB (always for v6; --aligned-chunk for v5). */
  aligned: boolean;
  /** Write the chunk-info array (v6 only: v5 blobs carry no blob meta). */
  blobMeta: boolean;
  blobToc: boolean;
  inlineMeta: boolean;
}


export class BlobWriter {
  readonly chunks: BlobChunk[] = [];
  private readonly _opts: BlobWriterOptions;
  private readonly _dedup = new Map<string, BlobChunk>();
  /** sha256 of everything written: the blob id. */
  private readonly _hash = createDigestHasher('sha256');
  private readonly _toc: TocEntry[] = [];
  private _fd: number;
  private _stage = Buffer.allocUnsafe(kStageSize);
  private _staged = 0;
  private _pos = 0;
  private _uncompressedSize = 0;
  private _dataSize = 0;
  private _features: number = kBlobFeatures.CAP_TAR_TOC;
  private _meta: { ciCompressor: number; ciOffset: number; ciCompressedSize: number; ciUncompressedSize: number } | undefined;
  private _tocSize = 0;
  private _tocDigest: Buffer = Buffer.alloc(32);
  private _tail: Promise<unknown> = Promise.resolve();
  private _inflight: Promise<BlobChunk>[] = [];

  constructor(opts: BlobWriterOptions) {
    this._opts = opts;
    if (opts.inlineMeta) this._features |= kBlobFeatures.INLINED_FS_META | kBlobFeatures.HAS_TAR_HEADER;
    if (opts.blobToc) this._features |= kBlobFeatures.HAS_TOC | kBlobFeatures.HAS_TAR_HEADER;
    this._fd = openSync(opts.path, 'w', 0o644);
  }

  get position(): number {
    return this._pos;
  }
  /** Bytes of chunk data (the blob's compressed data size). */
  get dataSize(): number {
    return this._dataSize;
  }
  get uncompressedSize(): number {
    return this._uncompressedSize;
  }
  get features(): number {
    return this._features;
  }
  get meta(): BlobWriter['_meta'] {
    return this._meta;
  }
  get tocSize(): number {
    return this._tocSize;
  }
  get tocDigest(): Buffer {
    return this._tocDigest;
  }

  /**
   * Stores one chunk (or finds its duplicate). Large chunks are digested and compressed on the
   * pool's workers, but chunks are committed — deduplicated, numbered, written — strictly in
   * submission order, so the blob does not depend on thread timing. `data` must not be reused by
   * the caller (it may be transferred to a worker). Await `drain()` to bound memory.
   */
  addChunk(data: Buffer, fileOffset: number, pool?: ChunkPool): Promise<BlobChunk> {
    // Read the size first: handing `data` to a worker detaches it (length 0 afterwards).
    const size = data.length;
    const job: Promise<ChunkResult> =
      pool && size >= kPoolMinBytes ? pool.process(data, this._opts.compressor, this._opts.digester) : Promise.resolve(this._compute(data));
    const p = this._tail.then(async () => {
      const r = await job;
      return this._commit(r, size, fileOffset);
    });
    // Later commits wait for this one even if it fails; a failure fails the whole build.
    this._tail = p.catch(() => undefined);
    p.catch(() => undefined);
    this._inflight.push(p);
    return p;
  }

  /** Waits until at most `max` chunks are still being processed. */
  async drain(max = 0): Promise<void> {
    while (this._inflight.length > max) await this._inflight.shift();
  }

  private _compute(data: Buffer): ChunkResult {
    const { data: stored, compressed } = compressChunk(this._opts.compressor, data);
    return { digest: chunkDigest(this._opts.digester, data), stored, compressed };
  }

  private _commit(r: ChunkResult, size: number, fileOffset: number): BlobChunk {
    const key = r.digest.toString('latin1') + String(size);
    const dup = this._dedup.get(key);
    if (dup) return dup;
    if (this.chunks.length >= kMaxChunksPerBlob) {
      throw new BuildError(`too many chunks for one blob (limit ${kMaxChunksPerBlob}); use a larger --chunk-size`);
    }
    const chunk: BlobChunk = {
      digest: r.digest,
      index: this.chunks.length,
      compressedOffset: this._pos,
      compressedSize: r.stored.length,
      uncompressedOffset: this._uncompressedSize,
      uncompressedSize: size,
      compressed: r.compressed,
      fileOffset,
    };
    this._write(r.stored);
    this._dataSize += r.stored.length;
    this._uncompressedSize += this._opts.aligned ? roundUp4k(size) : size;
    this.chunks.push(chunk);
    this._dedup.set(key, chunk);
    return chunk;
  }

  /**
   * Ends the chunk data and writes the blob meta (upstream `finalize_blob_data` +
   * `dump_meta_data`). Nothing is written for an empty blob.
   */
  writeMeta(): void {
    const tarHeaders = this._opts.inlineMeta || this._opts.blobToc;
    if (this.chunks.length === 0) return;
    if (tarHeaders) {
      this._tarHeader(kTocNames.blob, this._dataSize);
      if (this._opts.blobToc) {
        // Upstream digests everything written so far, the "image.blob" header included.
        const digest = this._hash.digest();
        this._toc.push({ name: kTocNames.blob, compressor: 0, digest, compressedOffset: 0, compressedSize: this._dataSize, uncompressedSize: this._uncompressedSize });
      }
    }
    if (!this._opts.blobMeta) return;
    this._features |= kBlobFeatures.ALIGNED;
    if (this._opts.blobToc) this._features |= kBlobFeatures.INLINED_CHUNK_DIGEST;
    const ci = encodeChunkInfoV1(this.chunks);
    const { data: ciStored, compressed } = compressChunk(this._opts.compressor, ci);
    const ciCompressor = compressed ? compressorToEnum(this._opts.compressor) : 0;
    this._meta = { ciCompressor, ciOffset: this._pos, ciCompressedSize: ciStored.length, ciUncompressedSize: ci.length };
    const header = encodeBlobMetaHeader({ features: this._features, ciEntries: this.chunks.length, ...this._meta });
    this._write(ciStored);
    this._write(header);
    if (tarHeaders) this._tarHeader(kTocNames.meta, ciStored.length + kBlobMetaHeaderSize);
    if (this._opts.blobToc) {
      const { ciOffset } = this._meta;
      this._toc.push({ name: kTocNames.meta, compressor: ciCompressor, digest: sha256(ci), compressedOffset: ciOffset, compressedSize: ciStored.length, uncompressedSize: ci.length });
      this._toc.push({ name: kTocNames.metaHeader, compressor: 0, digest: sha256(header), compressedOffset: ciOffset + ciStored.length, compressedSize: kBlobMetaHeaderSize, uncompressedSize: kBlobMetaHeaderSize });
      const digests = Buffer.concat(this.chunks.map((c) => c.digest));
      const offset = this._pos;
      this._write(digests);
      this._tarHeader(kTocNames.digest, digests.length);
      this._toc.push({ name: kTocNames.digest, compressor: 0, digest: sha256(digests), compressedOffset: offset, compressedSize: digests.length, uncompressedSize: digests.length });
    }
  }

  /** Appends the bootstrap for --blob-inline-meta: zstd with a TOC (new format), raw without. */
  writeBootstrap(bootstrap: Buffer): void {
    const offset = this._pos;
    let stored = bootstrap;
    let compressor = 0;
    if (this._opts.blobToc) {
      const c = compressChunk('zstd', bootstrap);
      stored = c.data;
      compressor = c.compressed ? compressorToEnum('zstd') : 0;
    }
    this._write(stored);
    this._tarHeader(kTocNames.boot, stored.length);
    if (this._opts.blobToc) {
      this._toc.push({ name: kTocNames.boot, compressor, digest: sha256(bootstrap), compressedOffset: offset, compressedSize: stored.length, uncompressedSize: bootstrap.length });
    }
  }

  /** Writes the TOC (if enabled), flushes and closes; returns the file's sha256 and size. */
  finish(): { sha256: string; size: number } {
    if (this._opts.blobToc && this._toc.length > 0) {
      const toc = encodeToc(this._toc);
      this._write(toc);
      const header = this._tarHeader(kTocNames.toc, toc.length);
      this._tocDigest = sha256(Buffer.concat([toc, header]));
      this._tocSize = toc.length + kTarHeaderSize;
    }
    this._flush();
    closeSync(this._fd);
    this._fd = -1;
    return { sha256: this._hash.digest().toString('hex'), size: this._pos };
  }

  /** Closes without finishing (error paths). */
  abort(): void {
    if (this._fd >= 0) closeSync(this._fd);
    this._fd = -1;
  }

  private _tarHeader(name: string, size: number): Buffer {
    const h = gnuTarHeader(name, size);
    this._write(h);
    return h;
  }

  private _write(data: Buffer): void {
    this._hash.update(data);
    this._pos += data.length;
    if (data.length >= kStageSize / 2) {
      this._flush();
      writeAll(this._fd, data);
      return;
    }
    if (this._staged + data.length > kStageSize) this._flush();
    data.copy(this._stage, this._staged);
    this._staged += data.length;
  }

  private _flush(): void {
    if (this._staged === 0) return;
    writeAll(this._fd, this._stage.subarray(0, this._staged));
    this._staged = 0;
  }
}

function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

export const roundUp4k = (n: number): number => Math.ceil(n / 4096) * 4096;
