/**
 * Extent tables for the native READ fast path (native/core/readpath/extent_table.h).
 *
 * One table describes one file: its size and, per chunk, which file range the chunk covers and
 * where its bytes are. The daemon builds it from RAFS chunk metadata at OPEN and returns it in
 * `FuseOpenReply.extents` (or installs it with `session.setExtents(fh, table)`). Tables are
 * plain numbers (a Float64Array, `kExtentStride` per extent) and may be reused for many opens.
 *
 * Per extent:
 * - `fileOffset`, `length`: the file range (length 1..16 MiB); extents sorted, not overlapping,
 *   inside `fileSize`. Ranges no extent covers read as zeros.
 * - `blobSlot`: the blob registered with `session.registerBlob(slot, ...)`.
 * - `chunkIndex`: the chunk's bit in that blob's chunk map (a missing bit makes the READ a miss).
 * - `sourceOffset`, `sourceSize`: where the bytes are in the blob's data file. Uncompressed
 *   (the usual cache file layout): `sourceSize === length`. `compressed: true`: the source holds
 *   the chunk compressed with the blob's algorithm (a `cache.compressed` cache, or a local blob
 *   served without a cache) and `sourceSize` is the compressed size.
 * - `hole: true`: zeros, no blob involved.
 */
import { NydusError } from '../util/errors.js';

export const kExtentStride = 7;
export const kExtentHole = 1;
export const kExtentCompressed = 2;
const kMaxChunk = 16 * 1024 * 1024;

export interface FuseExtent {
  fileOffset: number;
  length: number;
  blobSlot: number;
  chunkIndex: number;
  sourceOffset: number;
  sourceSize: number;
  compressed?: boolean;
  hole?: boolean;
}

export class FuseExtentTable {
  readonly fileSize: number;
  private _values: Float64Array;
  private _count = 0;
  private _end = 0;

  constructor(fileSize: number, capacity = 16) {
    if (!Number.isSafeInteger(fileSize) || fileSize < 0) {
      throw new NydusError('ERR_FUSE_EXTENTS', `fileSize ${String(fileSize)} is not a non-negative safe integer`);
    }
    this.fileSize = fileSize;
    this._values = new Float64Array(Math.max(1, capacity) * kExtentStride);
  }

  get count(): number {
    return this._count;
  }

  /** The extents as the native side reads them (a view; do not modify). */
  get values(): Float64Array {
    return this._values;
  }

  /** Appends a chunk extent. Throws ERR_FUSE_EXTENTS on an out-of-order or malformed extent. */
  add(e: FuseExtent): this {
    const flags = (e.hole === true ? kExtentHole : 0) | (e.compressed === true ? kExtentCompressed : 0);
    return this._push(e.fileOffset, e.length, e.blobSlot, e.chunkIndex, e.sourceOffset, e.sourceSize, flags);
  }

  /** Appends a hole (zeros) — the same as leaving the range uncovered, but explicit. */
  addHole(fileOffset: number, length: number): this {
    return this._push(fileOffset, length, 0, 0, 0, 0, kExtentHole);
  }

  private _push(off: number, len: number, slot: number, index: number, srcOff: number, srcSize: number, flags: number): this {
    const bad = (what: string): never => {
      throw new NydusError('ERR_FUSE_EXTENTS', `extent ${String(this._count)}: ${what}`);
    };
    if (!Number.isSafeInteger(off) || off < this._end) bad('fileOffset must be an integer at or after the previous extent end');
    if (!Number.isInteger(len) || len < 1 || len > kMaxChunk) bad('length must be 1..16 MiB');
    if (off + len > this.fileSize) bad('extends past fileSize');
    if ((flags & kExtentHole) === 0) {
      if (!Number.isInteger(slot) || slot < 0 || slot >= 4096) bad('blobSlot must be 0..4095');
      if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) bad('chunkIndex must be a uint32');
      if (!Number.isSafeInteger(srcOff) || srcOff < 0) bad('sourceOffset must be a non-negative safe integer');
      if ((flags & kExtentCompressed) !== 0) {
        if (!Number.isInteger(srcSize) || srcSize < 1 || srcSize > 0xffffffff) bad('compressed sourceSize must be 1..2^32-1');
      } else if (srcSize !== len) {
        bad('sourceSize must equal length for uncompressed data');
      }
    }
    if ((this._count + 1) * kExtentStride > this._values.length) {
      const grown = new Float64Array(this._values.length * 2);
      grown.set(this._values);
      this._values = grown;
    }
    const o = this._count * kExtentStride;
    const v = this._values;
    v[o] = off;
    v[o + 1] = len;
    v[o + 2] = slot;
    v[o + 3] = index;
    v[o + 4] = srcOff;
    v[o + 5] = srcSize;
    v[o + 6] = flags;
    this._count++;
    this._end = off + len;
    return this;
  }
}
