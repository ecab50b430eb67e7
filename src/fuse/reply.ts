/**
 * Encoding handler results into the reply scratch the native session reads (the numeric record
 * layouts of native/core/fuse/upcall.h; a unit test checks these constants against
 * `fuseAbiInfo()`). No FUSE byte layout lives here: the native side builds the wire structs
 * and validates every number written below.
 */
import type { FuseAttr, FuseDirEntry, FuseDirEntryPlus, FuseEntry, FuseOpenReply, FuseStatfs } from './fuse-types.js';

export const kUpcallStride = 12;
export const kAttrBase = 4;
export const kEntryStride = 20;
export const kStatfsStride = 8;
export const kDirentStride = 24;
export const kDirentOff = 20;
export const kDirentNameOffset = 21;
export const kDirentNameLength = 22;
export const kDirentType = 23;
export const kUpcallReadMiss = 4097;
export const kUpcallForget = 4098;
export const kUpcallInit = 4099;
export const kUpcallDestroy = 4100;
export const kUpcallClosed = 4101;
export const kOpcodeTableSize = 52;
/** Most dirent records one reply can hold (a 128 KiB reply of minimal 32-byte records). */
export const kMaxDirents = 4096;

export interface TimeoutDefaults {
  entryTimeout: number;
  attrTimeout: number;
}

/** Bytes one READDIR (plus = READDIRPLUS) record takes for a name of `nameLength` bytes. */
export function fuseDirentSize(nameLength: number, plus: boolean): number {
  return (((plus ? 152 : 24) + nameLength + 7) & ~7) >>> 0;
}

export function writeAttr(nums: Float64Array, base: number, a: FuseAttr): void {
  const o = base + kAttrBase;
  nums[o] = a.ino;
  nums[o + 1] = a.size;
  nums[o + 2] = a.blocks ?? Math.ceil(a.size / 512);
  nums[o + 3] = a.atime;
  nums[o + 4] = a.atimeNsec ?? 0;
  nums[o + 5] = a.mtime;
  nums[o + 6] = a.mtimeNsec ?? 0;
  nums[o + 7] = a.ctime;
  nums[o + 8] = a.ctimeNsec ?? 0;
  nums[o + 9] = a.mode;
  nums[o + 10] = a.nlink;
  nums[o + 11] = a.uid;
  nums[o + 12] = a.gid;
  nums[o + 13] = a.rdev ?? 0;
  nums[o + 14] = a.blksize ?? 4096;
  nums[o + 15] = a.flags ?? 0;
}

export function writeEntry(nums: Float64Array, base: number, e: FuseEntry, d: TimeoutDefaults): void {
  nums[base] = e.nodeid;
  nums[base + 1] = e.generation ?? 0;
  nums[base + 2] = e.entryTimeout ?? d.entryTimeout;
  nums[base + 3] = e.attrTimeout ?? d.attrTimeout;
  if (e.attr !== undefined) {
    writeAttr(nums, base, e.attr);
  } else if (e.nodeid === 0) {
    nums.fill(0, base + kAttrBase, base + kEntryStride);
    nums[base + kAttrBase + 9] = 0o100000; // a valid type for the (ignored) attr of a negative entry
  } else {
    throw new TypeError('entry.attr is required for nodeid != 0');
  }
}

export function writeAttrReply(nums: Float64Array, attr: FuseAttr, attrTimeout: number): void {
  nums[3] = attrTimeout;
  writeAttr(nums, 0, attr);
}

export function writeStatfs(nums: Float64Array, s: FuseStatfs): void {
  nums[0] = s.blocks;
  nums[1] = s.bfree;
  nums[2] = s.bavail;
  nums[3] = s.files;
  nums[4] = s.ffree;
  nums[5] = s.bsize;
  nums[6] = s.namelen;
  nums[7] = s.frsize;
}

export function openFlagsOf(r: FuseOpenReply): number {
  let f = r.openFlags ?? 0;
  if (r.directIo === true) f |= 1;
  if (r.keepCache === true) f |= 2;
  if (r.nonSeekable === true) f |= 4;
  if (r.cacheDir === true) f |= 8;
  if (r.noFlush === true) f |= 32;
  return f >>> 0;
}

/**
 * Writes up to `kMaxDirents` records whose total size fits `size` into the scratch. Returns how
 * many records and name bytes were written (the native side may still send fewer when the
 * writable space is smaller than `size`).
 */
export function encodeDirents(
  nums: Float64Array,
  bytes: Buffer,
  entries: readonly (FuseDirEntry | FuseDirEntryPlus)[],
  plus: boolean,
  size: number,
  d: TimeoutDefaults,
): { count: number; namesLength: number } {
  let used = 0;
  let pos = 0;
  let count = 0;
  const max = Math.min(entries.length, kMaxDirents, Math.floor(nums.length / kDirentStride));
  for (; count < max; count++) {
    const e = entries[count] as FuseDirEntry & FuseDirEntryPlus;
    const name = e.name;
    const len = typeof name === 'string' ? Buffer.byteLength(name) : name.length;
    const rec = fuseDirentSize(len, plus);
    if (used + rec > size || pos + len > bytes.length) break;
    if (typeof name === 'string') bytes.write(name, pos, 'utf8');
    else bytes.set(name, pos);
    const b = count * kDirentStride;
    if (plus) {
      writeEntry(nums, b, e.entry, d);
      nums[b + kDirentType] = -1;
      if (e.entry.nodeid === 0 && e.entry.attr === undefined) {
        throw new TypeError('a readdirplus entry without nodeid needs attr (ino, mode)');
      }
    } else {
      nums[b + kAttrBase] = e.ino;
      nums[b + kAttrBase + 9] = e.mode ?? 0;
      nums[b + kDirentType] = e.type ?? (e.mode === undefined ? 0 : -1);
    }
    nums[b + kDirentOff] = e.offset;
    nums[b + kDirentNameOffset] = pos;
    nums[b + kDirentNameLength] = len;
    pos += len;
    used += rec;
  }
  return { count, namesLength: pos };
}

/** LISTXATTR reply bytes: every name followed by NUL. */
export function joinXattrNames(names: ReadonlyArray<Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  for (const n of names) {
    parts.push(typeof n === 'string' ? Buffer.from(n) : n, Buffer.alloc(1));
  }
  return Buffer.concat(parts);
}
