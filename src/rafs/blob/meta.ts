/**
 * Blob meta ("CI", compression info; reference/rafs-format.md §2.2): the 4096-byte header, the
 * chunk info array (v1 16-byte or v2 24-byte entries, decoded on demand by index) and the ZRan
 * context table. Two on-disk homes are parsed here: the `<blob_id>.blob.meta` cache file and the
 * `[compressed CI][header]` region inside a data blob at `ci_offset`.
 */
import { alignUp, ByteView, readU64 } from '../layout/bytes.js';
import { kBlobFeatures, kBlobMetaHeaderSize, kBlobMetaMagic, kChunkInfoV1Size, kChunkInfoV2Size } from '../layout/constants.js';
import { kBlobMetaHdr, kCiV2Flags, kCiV2ValidFlags, kZranCtx } from '../layout/blob-offsets.js';
import { corrupt, unsupported } from '../layout/errors.js';
import { compressorFromEnum, decodeChunk, type CompressorName } from './codec.js';
import type { BlobInfo } from './types.js';

export interface BlobMetaHeader {
  features: number;
  ciCompressor: CompressorName;
  ciEntries: number;
  /** Offset of the compressed CI in the data blob. */
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  /** ZRan context table, as an offset inside the *uncompressed* CI buffer. */
  zranOffset: number;
  zranSize: number;
  zranCount: number;
}

/** One decoded CI entry. */
export interface BlobChunkEntry {
  index: number;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  zran: boolean;
  batch: boolean;
  encrypted: boolean;
  /** CRC32 of the uncompressed data when the v2 HAS_CRC32 flag is set. */
  crc32: number | undefined;
  /** v2 `data` high/low words: zran or batch context index and the offset within it. */
  ctxIndex: number;
  ctxOffset: number;
}

/** A blob's parsed meta as the reader consumes it. `digests` = `blob.digest` (chunkCount × 32). */
export interface BlobChunkMeta {
  header: BlobMetaHeader;
  ci: BlobChunkInfoArray;
  digests?: Buffer | undefined;
}

export interface ZranContext {
  inOffset: number;
  outOffset: number;
  dictOffset: number;
  inLen: number;
  outLen: number;
  dictSize: number;
  ctxByte: number;
  ctxBits: number;
}

export function parseBlobMetaHeader(buf: Buffer, file = 'blob meta header', base = 0): BlobMetaHeader {
  const v = new ByteView(buf, file);
  v.check(0, kBlobMetaHeaderSize, 'blob meta header');
  const what = 'blob meta header';
  if (v.u32(kBlobMetaHdr.magic, what) !== kBlobMetaMagic || v.u32(kBlobMetaHdr.magic2, what) !== kBlobMetaMagic) {
    throw corrupt(file, what, base, 'bad magic (expected 0xb10bb10b at @0 and @4092)');
  }
  const rawCompressor = v.u32(kBlobMetaHdr.ciCompressor, what);
  const ciCompressor = compressorFromEnum(rawCompressor);
  if (ciCompressor === undefined) throw corrupt(file, what, base + kBlobMetaHdr.ciCompressor, `unknown CI compressor ${rawCompressor}`);
  const h: BlobMetaHeader = {
    features: v.u32(kBlobMetaHdr.features, what),
    ciCompressor,
    ciEntries: v.u32(kBlobMetaHdr.ciEntries, what),
    ciOffset: v.u64(kBlobMetaHdr.ciOffset, what),
    ciCompressedSize: v.u64(kBlobMetaHdr.ciCompressedSize, what),
    ciUncompressedSize: v.u64(kBlobMetaHdr.ciUncompressedSize, what),
    zranOffset: v.u64(kBlobMetaHdr.ciZranOffset, what),
    zranSize: v.u64(kBlobMetaHdr.ciZranSize, what),
    zranCount: v.u32(kBlobMetaHdr.ciZranCount, what),
  };
  if (h.ciCompressor === 'none' && h.ciCompressedSize !== h.ciUncompressedSize) {
    throw corrupt(file, what, base, `uncompressed CI has compressed size ${h.ciCompressedSize} != ${h.ciUncompressedSize}`);
  }
  if (h.ciUncompressedSize > 0x7fff_ffff) throw corrupt(file, what, base, `CI size ${h.ciUncompressedSize} is too large`);
  return h;
}

export function ciEntrySize(header: BlobMetaHeader): number {
  return header.features & kBlobFeatures.CHUNK_INFO_V2 ? kChunkInfoV2Size : kChunkInfoV1Size;
}

/**
 * The CI array, decoded lazily: `get(i)` reads entry i from the buffer. Construction validates
 * only that the buffer holds `count` entries.
 */
export class BlobChunkInfoArray {
  readonly count: number;
  readonly version: 1 | 2;
  private readonly _buf: Buffer;
  /**
   * The entries' words are read through a DataView: Buffer.readUInt32LE is a JavaScript function
   * with its own checks, and a warm cache's open decodes every ready chunk's entry (the check of
   * ready bits over holes, ~10 000 for a 10 000-file image) in code too new to be optimized.
   */
  private readonly _view: DataView;
  private readonly _file: string;

  constructor(ci: Buffer, header: BlobMetaHeader, file = 'blob meta') {
    const size = ciEntrySize(header);
    if (header.ciEntries * size > ci.length) {
      throw corrupt(file, 'chunk info array', 0, `${header.ciEntries} entries of ${size} bytes do not fit in ${ci.length} bytes`);
    }
    this.count = header.ciEntries;
    this.version = size === kChunkInfoV2Size ? 2 : 1;
    this._buf = ci;
    this._view = new DataView(ci.buffer, ci.byteOffset, ci.byteLength);
    this._file = file;
  }

  /** The raw (uncompressed) CI bytes, e.g. to write a `.blob.meta` cache file. */
  get bytes(): Buffer {
    return this._buf;
  }

  get(index: number): BlobChunkEntry {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw corrupt(this._file, 'chunk info array', 0, `chunk index ${index} is outside 0..${this.count - 1}`);
    }
    return this.version === 1 ? this._v1(index) : this._v2(index);
  }

  /**
   * Entry `index`'s compressed offset, read without making an entry (scans over every entry);
   * v1 and v2 keep it at the same place. `index` must be in range.
   */
  compressedOffset(index: number): number {
    const at = index * (this.version === 1 ? kChunkInfoV1Size : kChunkInfoV2Size) + 8;
    return this._view.getUint32(at, true) + (this._view.getUint32(at + 4, true) & 0xff) * 0x1_0000_0000;
  }

  /**
   * The ranges of entries `indexes` in one pass: `[offset, size]` pairs, of the compressed data
   * (`compressed`) or of the uncompressed data (sizes rounded up to a multiple of `unit`); NaN
   * for an index outside the array. The values get() decodes, and its error for a v2 entry with
   * invalid flags. A warm cache's open checks the range of every ready chunk (~10 000 for a
   * 10 000-file image) before the first request is served, in code too new to be optimized: an
   * entry object and a range object per chunk were most of that check's time, so the uncompressed
   * ranges (plain caches) are read without making either.
   */
  ranges(indexes: Uint32Array, compressed: boolean, unit = 1): Float64Array {
    const out = new Float64Array(indexes.length * 2);
    const b = this._view;
    const count = this.count;
    const n = indexes.length;
    // A tight loop for plain caches: this runs once per start over every ready chunk, mostly in
    // baseline code, where every call, branch and property load in the loop costs.
    if (!compressed && unit === 1) {
      const v1 = this.version === 1;
      const stride = v1 ? kChunkInfoV1Size : kChunkInfoV2Size;
      for (let k = 0; k < n; k++) {
        const index = indexes[k] as number;
        if (index >= count) {
          out[2 * k] = out[2 * k + 1] = Number.NaN;
          continue;
        }
        const ulo = b.getUint32(index * stride, true);
        const uhi = b.getUint32(index * stride + 4, true);
        if (v1) {
          out[2 * k] = (ulo >>> 12) * 4096 + (uhi & 0xfff) * 0x1_0000_0000;
          out[2 * k + 1] = ((((ulo >>> 8) & 0xf) << 20) | (uhi >>> 12)) + 1;
        } else {
          if ((uhi >>> 24) & ~kCiV2ValidFlags) this._v2(index); // throws what get() throws
          out[2 * k] = ulo * 4096;
          out[2 * k + 1] = (uhi & 0xffffff) + 1;
        }
      }
      return out;
    }
    for (let k = 0; k < n; k++) {
      const index = indexes[k] as number;
      if (index >= count) {
        out[2 * k] = out[2 * k + 1] = Number.NaN;
        continue;
      }
      // The compressed and encrypted caches: get() decodes (and checks) each entry.
      const e = this.get(index);
      out[2 * k] = compressed ? e.compressedOffset : e.uncompressedOffset;
      out[2 * k + 1] = compressed ? e.compressedSize : Math.ceil(e.uncompressedSize / unit) * unit;
    }
    return out;
  }

  private _v1(index: number): BlobChunkEntry {
    const b = this._view;
    const off = index * kChunkInfoV1Size;
    const ulo = b.getUint32(off, true);
    const uhi = b.getUint32(off + 4, true);
    const clo = b.getUint32(off + 8, true);
    const chi = b.getUint32(off + 12, true);
    // uncomp_info: offset bits 12..43; size-1 bits 20..23 at 8..11 and bits 0..19 at 44..63.
    const uoff = (ulo >>> 12) * 4096 + (uhi & 0xfff) * 0x1_0000_0000;
    const usize = ((((ulo >>> 8) & 0xf) << 20) | (uhi >>> 12)) + 1;
    // comp_info: offset bits 0..39; size-1 bits 20..23 at 40..43 and bits 0..19 at 44..63.
    const coff = clo + (chi & 0xff) * 0x1_0000_0000;
    const csize = ((((chi >>> 8) & 0xf) << 20) | (chi >>> 12)) + 1;
    return {
      index,
      compressedOffset: coff,
      compressedSize: csize,
      uncompressedOffset: uoff,
      uncompressedSize: usize,
      compressed: csize !== usize,
      zran: false,
      batch: false,
      encrypted: false,
      crc32: undefined,
      ctxIndex: 0,
      ctxOffset: 0,
    };
  }

  private _v2(index: number): BlobChunkEntry {
    const b = this._view;
    const off = index * kChunkInfoV2Size;
    const ulo = b.getUint32(off, true);
    const uhi = b.getUint32(off + 4, true);
    const clo = b.getUint32(off + 8, true);
    const chi = b.getUint32(off + 12, true);
    const dlo = b.getUint32(off + 16, true);
    const dhi = b.getUint32(off + 20, true);
    const flags = uhi >>> 24;
    if (flags & ~kCiV2ValidFlags) {
      throw corrupt(this._file, 'chunk info v2 entry', off, `chunk ${index} has invalid flags 0x${flags.toString(16)}`);
    }
    return {
      index,
      compressedOffset: clo + (chi & 0xff) * 0x1_0000_0000,
      compressedSize: chi >>> 8,
      uncompressedOffset: ulo * 4096,
      uncompressedSize: (uhi & 0xffffff) + 1,
      compressed: (flags & kCiV2Flags.COMPRESSED) !== 0,
      zran: (flags & kCiV2Flags.ZRAN) !== 0,
      batch: (flags & kCiV2Flags.BATCH) !== 0,
      encrypted: (flags & kCiV2Flags.ENCRYPTED) !== 0,
      crc32: flags & kCiV2Flags.HAS_CRC32 ? dlo : undefined,
      ctxIndex: dhi,
      ctxOffset: dlo,
    };
  }
}

export function decodeChunkInfoArray(ci: Buffer, header: BlobMetaHeader, file = 'blob meta'): BlobChunkInfoArray {
  return new BlobChunkInfoArray(ci, header, file);
}

/** ZRan inflate contexts stored after the CI entries (ZRAN blobs only). */
export function decodeZranContexts(ci: Buffer, header: BlobMetaHeader, file = 'blob meta'): ZranContext[] {
  if (!(header.features & kBlobFeatures.ZRAN) || header.zranCount === 0) return [];
  const what = 'zran context table';
  const tableLen = header.zranCount * kZranCtx.size;
  const ciEnd = header.ciEntries * ciEntrySize(header);
  if (header.zranOffset < ciEnd || tableLen > header.zranSize || header.zranOffset + header.zranSize > ci.length) {
    throw corrupt(file, what, header.zranOffset, `${header.zranCount} contexts / ${header.zranSize} bytes do not fit the ${ci.length}-byte CI buffer`);
  }
  const dictTable = header.zranSize - tableLen;
  const out: ZranContext[] = [];
  for (let i = 0; i < header.zranCount; i++) {
    const o = header.zranOffset + i * kZranCtx.size;
    const ctx: ZranContext = {
      inOffset: readU64(ci, o + kZranCtx.inOffset, file, what),
      outOffset: readU64(ci, o + kZranCtx.outOffset, file, what),
      dictOffset: readU64(ci, o + kZranCtx.dictOffset, file, what),
      inLen: ci.readUInt32LE(o + kZranCtx.inLen),
      outLen: ci.readUInt32LE(o + kZranCtx.outLen),
      dictSize: ci.readUInt32LE(o + kZranCtx.dictSize),
      ctxByte: ci[o + kZranCtx.ctxByte] as number,
      ctxBits: ci[o + kZranCtx.ctxBits] as number,
    };
    if (ctx.dictOffset + ctx.dictSize > dictTable) {
      throw corrupt(file, what, o, `context ${i} dictionary ${ctx.dictOffset}+${ctx.dictSize} exceeds the ${dictTable}-byte dictionary table`);
    }
    out.push(ctx);
  }
  return out;
}

function rejectEncrypted(header: BlobMetaHeader, file: string): void {
  if (header.features & kBlobFeatures.ENCRYPTED) throw unsupported(file, 'encrypted blob meta');
}

/**
 * Parses a `<blob_id>.blob.meta` cache file: `[uncompressed CI, zero-padded to 4 KiB][header]`,
 * whose size must be exactly that.
 */
export function parseBlobMetaFile(buf: Buffer, file = 'blob.meta', blob?: BlobInfo): BlobChunkMeta {
  if (buf.length < kBlobMetaHeaderSize) throw corrupt(file, 'blob meta file', 0, `${buf.length} bytes is shorter than the 4096-byte header`);
  const hdrOff = buf.length - kBlobMetaHeaderSize;
  const header = parseBlobMetaHeader(buf.subarray(hdrOff), file, hdrOff);
  rejectEncrypted(header, file);
  const expected = alignUp(header.ciUncompressedSize, 4096) + kBlobMetaHeaderSize;
  if (buf.length !== expected) {
    throw corrupt(file, 'blob meta file', 0, `size ${buf.length} != CI ${header.ciUncompressedSize} rounded to 4 KiB + 4096 = ${expected}`);
  }
  if (blob) checkHeaderAgainstBlob(header, blob, file);
  const ci = buf.subarray(0, header.ciUncompressedSize);
  return { header, ci: new BlobChunkInfoArray(ci, header, file) };
}

/**
 * Parses the blob meta region of a data blob: the `ci_compressed_size + 4096` bytes at
 * `blob.metaCiOffset` (`[compressed CI][header]`), decompressing the CI.
 */
export function parseBlobMetaRegion(region: Buffer, blob: BlobInfo, file = blob.blobId): BlobChunkMeta {
  const csize = blob.metaCiCompressedSize;
  if (region.length !== csize + kBlobMetaHeaderSize) {
    throw corrupt(file, 'blob meta region', blob.metaCiOffset, `${region.length} bytes, expected ${csize} + 4096`);
  }
  const header = parseBlobMetaHeader(region.subarray(csize), file, blob.metaCiOffset + csize);
  rejectEncrypted(header, file);
  checkHeaderAgainstBlob(header, blob, file);
  const ci = decodeChunk(header.ciCompressor, region.subarray(0, csize), header.ciUncompressedSize, `${file}: blob meta CI`);
  return { header, ci: new BlobChunkInfoArray(ci, header, file) };
}

/** The header must agree with the blob table on entries, compressor, offset and sizes. */
export function checkHeaderAgainstBlob(header: BlobMetaHeader, blob: BlobInfo, file: string): void {
  const mismatch: string[] = [];
  if (header.ciEntries !== blob.chunkCount) mismatch.push(`entries ${header.ciEntries} != chunk count ${blob.chunkCount}`);
  if (blob.metaCiUncompressedSize !== 0 || blob.metaCiOffset !== 0) {
    if (header.ciCompressor !== blob.metaCiCompressor) mismatch.push(`compressor ${header.ciCompressor} != ${blob.metaCiCompressor}`);
    if (header.ciOffset !== blob.metaCiOffset) mismatch.push(`offset ${header.ciOffset} != ${blob.metaCiOffset}`);
    if (header.ciCompressedSize !== blob.metaCiCompressedSize) mismatch.push(`compressed size ${header.ciCompressedSize} != ${blob.metaCiCompressedSize}`);
    if (header.ciUncompressedSize !== blob.metaCiUncompressedSize) {
      mismatch.push(`uncompressed size ${header.ciUncompressedSize} != ${blob.metaCiUncompressedSize}`);
    }
  }
  if (mismatch.length > 0) {
    throw corrupt(file, 'blob meta header', header.ciOffset, `disagrees with the blob table: ${mismatch.join(', ')}`);
  }
}
