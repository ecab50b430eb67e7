/**
 * How one blob's chunks are laid out in its cache file, for each blobcache flavour upstream
 * nydusd has (storage/src/cache/filecache/mod.rs, cachedfile.rs; native/core/cache/cache_layout.h):
 *
 * - plain: `<blob_id>.blob.data`, uncompressed chunks at their uncompressed offsets, sized to the
 *   blob's uncompressed size; hits are preadv'd straight into the reply.
 * - raw (`cache.compressed`): `<blob_id>.blob.raw`, the backend's bytes at their compressed
 *   offsets, sized to the blob's compressed data (without CI, TOC or tar header); hits are
 *   decompressed natively into the reply.
 * - encrypted (`enable_encryption`): `<blob_id>.blob.data`, each chunk AES-128-XTS encrypted in
 *   4096-byte units at its uncompressed offset (the last unit padded, so the file may grow past
 *   the blob's size by less than 4096 bytes); hits are decrypted natively into the reply, and the
 *   chunk digest is checked.
 *
 * All three keep the chunk-ready map at `<blob_id>.blob.data.chunk_map`, as upstream does.
 * `.blob.data` means different bytes plain and encrypted, and XTS cannot tell a wrong key, so an
 * encrypted cache records which key wrote it in `<blob_id>.blob.data.cipher` (a SHA-256 of the
 * key, or "convergent"): a cache written plain, or with another key, has its ready bits cleared
 * at open and is fetched again, never served (this file is ours; upstream ignores it).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { NativeChunkMap } from '../native/index.js';
import { nativeAbi, native } from '../native/index.js';
import type { BlobChunkInfoArray } from '../rafs/index.js';
import { compressorToEnum, digesterToEnum } from '../rafs/index.js';
import { kBlobFeatures } from '../rafs/layout/constants.js';
import { NotSupportedError } from '../util/errors.js';
import { errnoName } from './fetch-handle.js';
import { errnoCode, StorageError } from './contract/errors.js';
import type { BlobInfo, ChunkInfo } from './types.js';

/**
 * The ranges of many chunks in one call (CacheLayout.storedRanges): `[offset, size]` per index,
 * NaN when the image does not say. What a blob with a chunk info array gives dropBitsOverHoles
 * (cache-files.ts): one pass over the array instead of two objects per ready chunk.
 */
export interface ChunkRanges {
  of(indexes: Uint32Array): Float64Array;
}

/** The cache flavour a configuration asks for (settings.ts). */
export interface CacheFormat {
  /** `cache.compressed`: keep chunks as the backend serves them (`.blob.raw`). */
  compressed: boolean;
  /** `enable_encryption`: the 32-byte key (`encryption_key`) and `enable_convergent_encryption`. */
  encryption?: { key: Buffer; convergent: boolean };
}

export type LayoutKind = 'plain' | 'raw' | 'encrypted';

const kNativeKind: Record<Exclude<LayoutKind, 'plain'>, number> = { raw: 1, encrypted: 2 };
const kUnit = 4096;
const kZeroDigest = Buffer.alloc(32);

/** The files one blob's cache uses and the sizes its data file may have. */
export class CacheLayout {
  private _map: NativeChunkMap | undefined;
  /** Chunk indexes whose place the native layout has recorded. */
  private readonly _known = new Set<number>();

  private constructor(
    readonly kind: LayoutKind,
    readonly info: BlobInfo,
    readonly dataPath: string,
    readonly mapPath: string,
    /** The size the data file is set to when shorter, and the most it may hold. */
    readonly minSize: number,
    readonly maxSize: number,
    private readonly _format: CacheFormat,
    private readonly _validate: boolean,
  ) {}

  static for(info: BlobInfo, workDir: string, format: CacheFormat | undefined, validate: boolean): CacheLayout {
    const base = join(workDir, info.blobId);
    const mapPath = `${base}.blob.data.chunk_map`;
    const f = format ?? { compressed: false };
    if (f.compressed) {
      if (info.compressor === 'gzip') {
        throw new StorageError('ERR_CACHE_FILE', `blob ${info.blobId}: a compressed cache (cache.compressed) of gzip chunks cannot be decoded natively`);
      }
      const size = compressedDataSize(info);
      return new CacheLayout('raw', info, `${base}.blob.raw`, mapPath, size, size, f, validate);
    }
    if (f.encryption) {
      // RAFS v5 packs chunks in the uncompressed blob without 4 KiB alignment; the padded
      // 4096-byte units of one chunk would overwrite the next.
      if (info.readaheadOffset !== undefined) throw new NotSupportedError('cache encryption of RAFS v5 images (their chunks are not 4 KiB aligned)');
      if (info.compressor === 'gzip') {
        throw new StorageError('ERR_CACHE_FILE', `blob ${info.blobId}: an encrypted cache of gzip chunks cannot be decoded natively`);
      }
      const max = Math.ceil(info.uncompressedSize / kUnit) * kUnit;
      return new CacheLayout('encrypted', info, `${base}.blob.data`, mapPath, info.uncompressedSize, max, f, validate);
    }
    return new CacheLayout('plain', info, `${base}.blob.data`, mapPath, info.uncompressedSize, info.uncompressedSize, f, validate);
  }

  /** Chunks without a digest cannot be cached (convergent encryption keys them by it). */
  get needsDigest(): boolean {
    return this._format.encryption?.convergent === true;
  }

  get plain(): boolean {
    return this.kind === 'plain';
  }

  /** A chunk's bytes in the data file (for the check of ready bits over holes). */
  storedRange(c: Pick<ChunkInfo, 'compressedOffset' | 'compressedSize' | 'uncompressedOffset' | 'uncompressedSize'>): { offset: number; size: number } {
    if (this.kind === 'raw') return { offset: c.compressedOffset, size: c.compressedSize };
    if (this.kind === 'encrypted') return { offset: c.uncompressedOffset, size: Math.ceil(c.uncompressedSize / kUnit) * kUnit };
    return { offset: c.uncompressedOffset, size: c.uncompressedSize };
  }

  /**
   * storedRange() of many chunks at once, read straight from the blob's chunk info array
   * (BlobChunkInfoArray.ranges), for dropBitsOverHoles (cache-files.ts).
   */
  storedRanges(ci: Pick<BlobChunkInfoArray, 'ranges'>): ChunkRanges {
    return { of: (indexes) => ci.ranges(indexes, this.kind === 'raw', this.kind === 'encrypted' ? kUnit : 1) };
  }

  /**
   * Runs while the map is held exclusively (cache-files.ts): makes sure `.blob.data` holds what
   * this layout reads, clearing every ready bit when it was written plain or with another key.
   * Returns what was wrong ('' when nothing).
   */
  checkCipher(map: NativeChunkMap, exclusive: boolean): string {
    if (this.kind === 'raw') return '';
    const path = `${this.dataPath}.cipher`;
    let had: string;
    try {
      had = readFileSync(path, 'utf8').trim();
    } catch {
      had = '';
    }
    const want = this.kind === 'encrypted' ? cipherTag(this._format) : '';
    if (had === want) return '';
    const ready = map.readyCount();
    const what = had === '' ? 'was written unencrypted' : want === '' ? 'is encrypted' : 'was encrypted with another key';
    if (!exclusive) {
      throw new StorageError('ERR_CACHE_FILE', `blob ${this.info.blobId}: cache file ${this.dataPath} ${what}, and another process uses it`);
    }
    for (const i of map.readyIndexes()) map.clearReady(i);
    try {
      if (want === '') rmSync(path, { force: true });
      else writeFileSync(path, `${want}\n`, { mode: 0o600 });
    } catch (err) {
      throw new StorageError('ERR_CACHE_FILE', `blob ${this.info.blobId}: cannot record the cache cipher in ${path}: ${errnoCode(err)}`, { cause: err });
    }
    return ready > 0 ? `${this.dataPath} ${what}; its ${ready} cached chunk(s) are fetched again` : '';
  }

  /** Gives the native side (the fill's store and the READ fast path) the layout; a no-op when plain. */
  attach(map: NativeChunkMap): void {
    this._map = map;
    if (this.plain) return;
    const enc = this._format.encryption;
    const kind = kNativeKind[this.kind as Exclude<LayoutKind, 'plain'>];
    const algo = compressorToEnum(this.info.compressor);
    // Encrypted chunks are always checked against their digest: XTS cannot detect a wrong key
    // or a damaged unit, and a wrong byte must never reach a reader.
    const verify = this.kind === 'encrypted' || this._validate;
    const dataSize = this.kind === 'raw' ? this.minSize : this.info.uncompressedSize;
    native().attachCacheLayout(map, kind, algo, digesterToEnum(this.info.digester), verify, enc?.convergent ?? false, enc ? enc.key : null, dataSize);
  }

  /**
   * Records the place of chunks about to be served (the native side decodes only recorded
   * chunks; the native fill records the chunks it stores itself). Throws a StorageError for
   * metadata the layout cannot hold.
   */
  learn(chunks: readonly ChunkInfo[]): void {
    const map = this._map;
    if (this.plain || !map) return;
    const todo = chunks.filter((c) => !this._known.has(c.chunkIndex));
    if (todo.length === 0) return;
    // A convergent key is the chunk digest (amplification skips chunks known without one).
    const blind = this.needsDigest ? todo.find((c) => c.digest.equals(kZeroDigest)) : undefined;
    if (blind) throw new StorageError('ERR_BAD_CHUNK', `blob ${this.info.blobId} chunk ${blind.chunkIndex}: convergent cache encryption needs the chunk digest, which the image does not carry`);
    this._learnNative(map, todo);
  }

  /**
   * Records the places of a file's chunks when its extent table is built (OPEN), so the READ
   * fast path decodes cached chunks without asking TypeScript first (after a restart, the first
   * READ of every chunk would otherwise be a round trip). Chunks the layout cannot hold are left
   * out here; the READ that needs one reports it.
   */
  learnAhead(chunks: readonly ChunkInfo[]): void {
    const map = this._map;
    if (this.plain || !map) return;
    const todo = chunks.filter((c) => !this._known.has(c.chunkIndex) && !(this.needsDigest && c.digest.equals(kZeroDigest)));
    if (todo.length === 0) return;
    try {
      this._learnNative(map, todo);
    } catch {
      // Learned up to the bad record; the rest go the miss way, where learn() reports them.
    }
  }

  private _learnNative(map: NativeChunkMap, todo: readonly ChunkInfo[]): void {
    const f = nativeAbi().records.layoutChunk;
    const rec = new Float64Array(todo.length * f.stride);
    const digests = Buffer.alloc(todo.length * 32);
    todo.forEach((c, i) => {
      const o = i * f.stride;
      rec[o + f.index] = c.chunkIndex;
      rec[o + f.uncompressedOffset] = c.uncompressedOffset;
      rec[o + f.compressedOffset] = c.compressedOffset;
      rec[o + f.uncompressedSize] = c.uncompressedSize;
      rec[o + f.compressedSize] = c.compressedSize;
      rec[o + f.compressed] = c.compressed ? 1 : 0;
      c.digest.copy(digests, i * 32, 0, 32);
    });
    try {
      native().learnChunks(map, rec, digests);
    } catch (err) {
      throw new StorageError('ERR_BAD_CHUNK', `blob ${this.info.blobId}: ${(err as Error).message}`, { cause: err });
    }
    for (const c of todo) this._known.add(c.chunkIndex);
  }

  /** Decodes a cached chunk and copies its bytes from `within` into `dst` (the handler's reads). */
  readChunk(fd: number, c: ChunkInfo, within: number, dst: Buffer): void {
    const plainBytes = Buffer.allocUnsafe(c.uncompressedSize);
    const rc = native().layoutRead(this._map as NativeChunkMap, fd, c.chunkIndex, plainBytes);
    if (rc !== 0) {
      throw new StorageError('ERR_CACHE_FILE', `blob ${this.info.blobId} chunk ${c.chunkIndex}: cannot decode it from ${this.dataPath} (${errnoName(-rc)}): a damaged cache file or a wrong encryption key`);
    }
    plainBytes.copy(dst, 0, within, within + dst.length);
  }
}

/** What `.blob.data.cipher` says for an encrypted cache. */
function cipherTag(f: CacheFormat): string {
  const e = f.encryption;
  if (!e) return '';
  if (e.convergent) return 'aes128xts convergent';
  // node:crypto on first use (an encrypted cache with a key): loading it cost every start ~4-10 ms (issue 13).
  const { createHash } = process.getBuiltinModule('node:crypto');
  return `aes128xts sha256:${createHash('sha256').update('nydusd cache key\0').update(e.key).digest('hex')}`;
}

/**
 * Upstream's compressed_data_size (storage/src/device.rs): the blob's chunk data without the CI,
 * TOC or tar header that may follow it, which is what `.blob.raw` is sized to.
 */
export function compressedDataSize(info: BlobInfo): number {
  if ((info.features & kBlobFeatures.SEPARATE) !== 0) return info.compressedSize;
  if ((info.features & kBlobFeatures.CAP_TAR_TOC) === 0) return info.compressedSize;
  const tarHeader = (info.features & kBlobFeatures.HAS_TAR_HEADER) !== 0 ? 0x200 : 0;
  const ciValid = info.metaCiOffset !== 0 && info.metaCiCompressedSize !== 0;
  return (ciValid ? info.metaCiOffset : info.compressedSize) - tarHeader;
}
