/**
 * Extent tables for the native READ fast path (native/core/readpath/extent_table.h).
 *
 * One table describes one file: its size and, per chunk, which file range the chunk covers and
 * where its bytes are. The daemon builds it from RAFS chunk metadata at OPEN and returns it in
 * `FuseOpenReply.extents` (or installs it with `session.setExtents(fh, table)`). Tables are
 * plain numbers (a Float64Array of the native extent record) and may be reused for many opens.
 *
 * Per extent:
 * - `fileOffset`, `length`: the file range (length 1..16 MiB); extents sorted, not overlapping,
 *   inside `fileSize`. Ranges no extent covers read as zeros.
 * - `blobSlot`: the blob registered with `session.registerBlob(slot, ...)`.
 * - `chunkIndex`: the chunk's bit in that blob's chunk map (a missing bit makes the READ a miss).
 * - `sourceOffset`, `sourceSize`: where the bytes are in the blob's data file, uncompressed
 *   (the plain cache file layout): `sourceSize === length`. A compressed or encrypted cache
 *   file is addressed the same way; its native layout finds and decodes the stored chunk.
 * - `hole: true`: zeros, no blob involved.
 */
import { nativeAbi } from '../native/index.js';
import type { RecordLayout } from '../native/index.js';
import { NydusError } from '../util/errors.js';

export interface FuseExtent {
  fileOffset: number;
  length: number;
  blobSlot: number;
  chunkIndex: number;
  sourceOffset: number;
  sourceSize: number;
  hole?: boolean;
}

export class FuseExtentTable {
  readonly fileSize: number;
  private readonly _x: RecordLayout<'extent'>;
  private readonly _hole: number;
  private readonly _maxChunk: number;
  private readonly _maxSlots: number;
  private _values: Float64Array;
  private _count = 0;
  private _end = 0;

  constructor(fileSize: number, capacity = 16) {
    if (!Number.isSafeInteger(fileSize) || fileSize < 0) {
      throw new NydusError('ERR_FUSE_EXTENTS', `fileSize ${String(fileSize)} is not a non-negative safe integer`);
    }
    const abi = nativeAbi();
    this.fileSize = fileSize;
    this._x = abi.records.extent;
    this._hole = abi.codes.extentHole;
    this._maxChunk = abi.limits.maxChunk;
    this._maxSlots = abi.limits.maxBlobSlots;
    this._values = new Float64Array(Math.max(1, capacity) * this._x.stride);
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
    return this._push(e.fileOffset, e.length, e.blobSlot, e.chunkIndex, e.sourceOffset, e.sourceSize, e.hole === true ? this._hole : 0);
  }

  /** Appends a hole (zeros) — the same as leaving the range uncovered, but explicit. */
  addHole(fileOffset: number, length: number): this {
    return this._push(fileOffset, length, 0, 0, 0, 0, this._hole);
  }

  private _push(off: number, len: number, slot: number, index: number, srcOff: number, srcSize: number, flags: number): this {
    const bad = (what: string): never => {
      throw new NydusError('ERR_FUSE_EXTENTS', `extent ${String(this._count)}: ${what}`);
    };
    if (!Number.isSafeInteger(off) || off < this._end) bad('fileOffset must be an integer at or after the previous extent end');
    if (!Number.isInteger(len) || len < 1 || len > this._maxChunk) bad(`length must be 1..${String(this._maxChunk)}`);
    if (off + len > this.fileSize) bad('extends past fileSize');
    if (flags === 0) {
      if (!Number.isInteger(slot) || slot < 0 || slot >= this._maxSlots) bad(`blobSlot must be 0..${String(this._maxSlots - 1)}`);
      if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) bad('chunkIndex must be a uint32');
      if (!Number.isSafeInteger(srcOff) || srcOff < 0) bad('sourceOffset must be a non-negative safe integer');
      if (srcSize !== len) bad('sourceSize must equal length');
    }
    const x = this._x;
    if ((this._count + 1) * x.stride > this._values.length) {
      const grown = new Float64Array(this._values.length * 2);
      grown.set(this._values);
      this._values = grown;
    }
    const o = this._count * x.stride;
    const v = this._values;
    v[o + x.fileOffset] = off;
    v[o + x.length] = len;
    v[o + x.blobSlot] = slot;
    v[o + x.chunkIndex] = index;
    v[o + x.sourceOffset] = srcOff;
    v[o + x.sourceSize] = srcSize;
    v[o + x.flags] = flags;
    this._count++;
    this._end = off + len;
    return this;
  }
}
