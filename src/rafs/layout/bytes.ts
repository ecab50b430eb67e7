/**
 * Bounds-checked little-endian reads over one Buffer. Every number taken from an image passes
 * through here (or through an explicit `check` before a raw read in a hot loop), so a truncated or
 * forged file yields a CORRUPT RafsError naming the file, the structure and the offset instead of
 * a RangeError or a silent wrap-around.
 */
import { corrupt } from './errors.js';

export class ByteView {
  readonly buf: Buffer;
  readonly file: string;
  readonly length: number;

  constructor(buf: Buffer, file: string) {
    this.buf = buf;
    this.file = file;
    this.length = buf.length;
  }

  /** Throws unless `[off, off+len)` lies inside the buffer (and both are safe integers). */
  check(off: number, len: number, what: string): void {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > this.length) {
      throw corrupt(this.file, what, off, `needs ${len} bytes but the file has ${this.length}`);
    }
  }

  u8(off: number, what: string): number {
    this.check(off, 1, what);
    return this.buf[off] as number;
  }

  u16(off: number, what: string): number {
    this.check(off, 2, what);
    return this.buf.readUInt16LE(off);
  }

  u32(off: number, what: string): number {
    this.check(off, 4, what);
    return this.buf.readUInt32LE(off);
  }

  /** u64 as a JS number; values above 2^53 are corrupt for every field RAFS defines. */
  u64(off: number, what: string): number {
    this.check(off, 8, what);
    return readU64(this.buf, off, this.file, what);
  }

  /** A signed i64 (timestamps: EROFS and FUSE treat mtime as signed) within the safe range. */
  i64(off: number, what: string): number {
    this.check(off, 8, what);
    return readI64(this.buf, off, this.file, what);
  }

  /** A view (not a copy) of `[off, off+len)`. */
  sub(off: number, len: number, what: string): Buffer {
    this.check(off, len, what);
    return this.buf.subarray(off, off + len);
  }

  fail(what: string, off: number, detail: string): Error {
    return corrupt(this.file, what, off, detail);
  }
}

/** Reads a u64 that must fit a JS safe integer; the caller has checked the range. */
export function readU64(buf: Buffer, off: number, file: string, what: string): number {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi > 0x1fffff) throw corrupt(file, what, off, `64-bit value 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is out of range`);
  return hi * 0x1_0000_0000 + lo;
}

/** Reads an i64 that must fit a JS safe integer (pre-1970 timestamps are negative). */
export function readI64(buf: Buffer, off: number, file: string, what: string): number {
  const v = buf.readBigInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw corrupt(file, what, off, `64-bit value ${v} is out of range`);
  }
  return Number(v);
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** ASCII up to the first NUL (or the end). */
export function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.toString('latin1', 0, nul < 0 ? buf.length : nul);
}
