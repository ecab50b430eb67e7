/**
 * Encoding handler results into the reply scratch the native session reads: the entry, statfs
 * and dirent records, whose slots come from the addon (src/native/abi.ts). No FUSE byte layout
 * lives here: the native side builds the wire structs and validates every number written below.
 */
import { nativeAbi } from '../native/index.js';
import type { NativeAbi, RecordLayout } from '../native/index.js';
import type { FuseAttr, FuseDirEntry, FuseDirEntryPlus, FuseEntry, FuseOpenReply, FuseStatfs } from './types.js';

/** Most dirent records one reply can hold (a 128 KiB reply of minimal 32-byte records). */
export const kMaxDirents = 4096;
/** A type the kernel accepts for the (ignored) attributes of a negative entry: S_IFREG. */
const kNegativeEntryMode = 0o100000;

export interface TimeoutDefaults {
  entryTimeout: number;
  attrTimeout: number;
}

/** Bytes one READDIR (plus = READDIRPLUS) record takes for a name of `nameLength` bytes. */
export function fuseDirentSize(nameLength: number, plus: boolean): number {
  const l = nativeAbi().limits;
  return (((plus ? l.direntPlusHeader : l.direntHeader) + nameLength + 7) & ~7) >>> 0;
}

/** Writes records into one session's reply scratch (the numbers array lent to the addon). */
export class ReplyEncoder {
  private readonly _e: RecordLayout<'entry'>;
  private readonly _d: RecordLayout<'dirent'>;
  private readonly _s: RecordLayout<'statfs'>;
  private readonly _fopen: NativeAbi['codes'];
  private readonly _head: number;
  private readonly _headPlus: number;

  constructor(
    private readonly _nums: Float64Array,
    private readonly _bytes: Buffer,
    private readonly _defaults: TimeoutDefaults,
    abi: NativeAbi = nativeAbi(),
  ) {
    this._e = abi.records.entry;
    this._d = abi.records.dirent;
    this._s = abi.records.statfs;
    this._fopen = abi.codes;
    this._head = abi.limits.direntHeader;
    this._headPlus = abi.limits.direntPlusHeader;
  }

  /** The attributes of the entry (or dirent) record at `base`. */
  attr(base: number, a: FuseAttr): void {
    const n = this._nums;
    const e = this._e;
    n[base + e.ino] = a.ino;
    n[base + e.size] = a.size;
    n[base + e.blocks] = a.blocks ?? Math.ceil(a.size / 512);
    n[base + e.atime] = a.atime;
    n[base + e.atimeNsec] = a.atimeNsec ?? 0;
    n[base + e.mtime] = a.mtime;
    n[base + e.mtimeNsec] = a.mtimeNsec ?? 0;
    n[base + e.ctime] = a.ctime;
    n[base + e.ctimeNsec] = a.ctimeNsec ?? 0;
    n[base + e.mode] = a.mode;
    n[base + e.nlink] = a.nlink;
    n[base + e.uid] = a.uid;
    n[base + e.gid] = a.gid;
    n[base + e.rdev] = a.rdev ?? 0;
    n[base + e.blksize] = a.blksize ?? 4096;
    n[base + e.flags] = a.flags ?? 0;
  }

  /** A LOOKUP answer (or the entry part of a READDIRPLUS record) at `base`. */
  entry(base: number, v: FuseEntry): void {
    const n = this._nums;
    const e = this._e;
    n[base + e.nodeid] = v.nodeid;
    n[base + e.generation] = v.generation ?? 0;
    n[base + e.entryValid] = v.entryTimeout ?? this._defaults.entryTimeout;
    n[base + e.attrValid] = v.attrTimeout ?? this._defaults.attrTimeout;
    if (v.attr !== undefined) {
      this.attr(base, v.attr);
    } else if (v.nodeid === 0) {
      n.fill(0, base + e.ino, base + e.stride);
      n[base + e.mode] = kNegativeEntryMode;
    } else {
      throw new TypeError('entry.attr is required for nodeid != 0');
    }
  }

  /** A GETATTR answer. */
  attrReply(attr: FuseAttr, attrTimeout: number): void {
    this._nums[this._e.attrValid] = attrTimeout;
    this.attr(0, attr);
  }

  statfs(v: FuseStatfs): void {
    const n = this._nums;
    const s = this._s;
    n[s.blocks] = v.blocks;
    n[s.bfree] = v.bfree;
    n[s.bavail] = v.bavail;
    n[s.files] = v.files;
    n[s.ffree] = v.ffree;
    n[s.bsize] = v.bsize;
    n[s.namelen] = v.namelen;
    n[s.frsize] = v.frsize;
  }

  openFlags(r: FuseOpenReply): number {
    const c = this._fopen;
    let f = r.openFlags ?? 0;
    if (r.directIo === true) f |= c.fopenDirectIo;
    if (r.keepCache === true) f |= c.fopenKeepCache;
    if (r.nonSeekable === true) f |= c.fopenNonseekable;
    if (r.cacheDir === true) f |= c.fopenCacheDir;
    if (r.noFlush === true) f |= c.fopenNoflush;
    return f >>> 0;
  }

  /**
   * Writes up to `kMaxDirents` records whose total size fits `size` into the scratch. Returns how
   * many records and name bytes were written (the native side may still send fewer when the
   * writable space is smaller than `size`).
   */
  dirents(entries: readonly (FuseDirEntry | FuseDirEntryPlus)[], plus: boolean, size: number): { count: number; namesLength: number } {
    const nums = this._nums;
    const bytes = this._bytes;
    const d = this._d;
    let used = 0;
    let pos = 0;
    let count = 0;
    const head = plus ? this._headPlus : this._head;
    const max = Math.min(entries.length, kMaxDirents, Math.floor(nums.length / d.stride));
    for (; count < max; count++) {
      const e = entries[count] as FuseDirEntry & FuseDirEntryPlus;
      const name = e.name;
      const len = typeof name === 'string' ? Buffer.byteLength(name) : name.length;
      const rec = ((head + len + 7) & ~7) >>> 0;
      if (used + rec > size || pos + len > bytes.length) break;
      if (typeof name === 'string') bytes.write(name, pos, 'utf8');
      else bytes.set(name, pos);
      const b = count * d.stride;
      if (plus) {
        this.entry(b, e.entry);
        nums[b + d.type] = -1;
        if (e.entry.nodeid === 0 && e.entry.attr === undefined) {
          throw new TypeError('a readdirplus entry without nodeid needs attr (ino, mode)');
        }
      } else {
        nums[b + d.ino] = e.ino;
        nums[b + d.mode] = e.mode ?? 0;
        nums[b + d.type] = e.type ?? (e.mode === undefined ? 0 : -1);
      }
      nums[b + d.off] = e.offset;
      nums[b + d.nameOffset] = pos;
      nums[b + d.nameLength] = len;
      pos += len;
      used += rec;
    }
    return { count, namesLength: pos };
  }
}

/** LISTXATTR reply bytes: every name followed by NUL. */
export function joinXattrNames(names: ReadonlyArray<Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  for (const n of names) {
    parts.push(typeof n === 'string' ? Buffer.from(n) : n, Buffer.alloc(1));
  }
  return Buffer.concat(parts);
}
