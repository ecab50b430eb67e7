/**
 * RAFS v6 reader over one Buffer holding the bootstrap. Inodes, dirents, xattrs and chunk
 * indexes are decoded on demand from the bytes (nothing per inode is materialised at open), and
 * every offset taken from the image is bounds-checked before use.
 */
import { alignUp, ByteView } from '../layout/bytes.js';
import { kSuperFlags, kV6CompactInodeSize, kV6DirentSize, kV6ExtendedInodeSize, kV6InodeSlotSize, kV6XattrHeaderSize, kV6XattrPrefixes, V6DataLayout } from '../layout/constants.js';
import { kV6Dirent, kV6FormatValidMask, kV6Inode, kV6XattrEntry, kV6XattrSharedCount } from '../layout/v6-offsets.js';
import { kRafsErrorCodes, RafsError, unsupported } from '../layout/errors.js';
import type { BlobChunkMeta } from '../blob/meta.js';
import type { BlobMetaProvider } from '../blob/blob-file.js';
import {
  DT_BLK,
  DT_CHR,
  DT_DIR,
  DT_FIFO,
  DT_LNK,
  DT_REG,
  DT_SOCK,
  DT_UNKNOWN,
  cmpName,
  notDir,
  walkImage,
  wrongType,
} from './common.js';
import { isDeviceMode, isDirMode, isLnkMode, isRegMode } from '../../util/mode-bits.js';
import { parseV6Super, type V6Meta } from './v6-super.js';
import { V6ChunkResolver } from './v6-chunks.js';
import type { BlobInfo, ChunkInfo, DirEntry, InodeAttr, InodeRef, RafsImage, RafsSuper } from './types.js';

/** e_file_type → DT_*. */
const kDtFromFileType = [DT_UNKNOWN, DT_REG, DT_DIR, DT_CHR, DT_BLK, DT_FIFO, DT_SOCK, DT_LNK];
const kMaxNameLen = 255;
const kMaxSymlinkLen = 4096;
const kXattrPrefixes = new Map<number, Buffer>(kV6XattrPrefixes.map(([i, p]) => [i, Buffer.from(p)]));

/** Decoded fixed part of an on-disk inode (what every operation needs first). */
interface V6Inode {
  nid: number;
  off: number;
  ext: boolean;
  layout: V6DataLayout;
  mode: number;
  size: number;
  iu: number;
  /** 32 or 64. */
  isize: number;
  xattrSize: number;
}

export interface V6ImageOptions {
  blobMetaProvider?: BlobMetaProvider | undefined;
  /** See OpenOptions.chunkTableFallback. */
  chunkTableFallback?: boolean | undefined;
}

export class V6Image implements RafsImage {
  readonly super: RafsSuper;
  readonly blobs: readonly BlobInfo[];
  private _v: ByteView;
  private readonly _m: V6Meta;
  private readonly _chunks: V6ChunkResolver;
  private _closed = false;
  // Scratch outputs of _entryName (start/end of the name in the buffer): avoids an allocation per
  // name compared during a lookup.
  private _ns = 0;
  private _ne = 0;

  constructor(buf: Buffer, file: string, opts: V6ImageOptions = {}) {
    this._v = new ByteView(buf, file);
    this._m = parseV6Super(this._v);
    const m = this._m;
    this.blobs = m.blobs;
    this.super = {
      version: 6,
      flags: m.flags,
      chunkSize: m.chunkSize,
      compressor: m.compressor,
      digester: m.digester,
      explicitUidGid: (m.flags & kSuperFlags.EXPLICIT_UID_GID) !== 0,
      hasXattr: (m.flags & kSuperFlags.HAS_XATTR) !== 0,
      inodeCount: m.inos,
      rootRef: m.rootNid,
      blockSize: m.blockSize,
      buildTimeSec: m.buildTime,
      metaSize: buf.length,
      inlinedChunkDigest: (m.flags & kSuperFlags.INLINED_CHUNK_DIGEST) !== 0,
      tarfs: (m.flags & kSuperFlags.TARFS_MODE) !== 0,
    };
    this._chunks = new V6ChunkResolver(this._v, m, this.super, opts.blobMetaProvider, opts.chunkTableFallback === true);
    const root = this._inode(m.rootNid);
    if (!isDirMode(root.mode)) throw this._v.fail('v6 root inode', root.off, `root nid ${m.rootNid} is not a directory`);
  }

  private _inode(nid: InodeRef): V6Inode {
    if (this._closed) throw new RafsError(kRafsErrorCodes.NOT_FOUND, `${this._v.file}: image is closed`);
    const v = this._v;
    const off = this._m.metaBase + nid * kV6InodeSlotSize;
    if (!Number.isSafeInteger(nid) || nid < 0 || off + kV6CompactInodeSize > v.length) {
      throw new RafsError(kRafsErrorCodes.BAD_INODE, `${v.file}: nid ${nid} is outside the meta area`);
    }
    const b = v.buf;
    const format = b.readUInt16LE(off + kV6Inode.format);
    if (format & ~kV6FormatValidMask) throw v.fail('v6 inode', off, `nid ${nid}: invalid i_format 0x${format.toString(16)}`);
    const ext = (format & 1) !== 0;
    const layout = (format >> 1) as V6DataLayout;
    if (layout !== V6DataLayout.FlatPlain && layout !== V6DataLayout.FlatInline && layout !== V6DataLayout.ChunkBased) {
      throw v.fail('v6 inode', off, `nid ${nid}: unsupported data layout ${format >> 1}`);
    }
    const isize = ext ? kV6ExtendedInodeSize : kV6CompactInodeSize;
    const icount = b.readUInt16LE(off + kV6Inode.xattrIcount);
    const xattrSize = icount > 0 ? kV6XattrHeaderSize + (icount - 1) * 4 : 0;
    v.check(off, isize + xattrSize, `v6 inode ${nid}`);
    return {
      nid,
      off,
      ext,
      layout,
      mode: b.readUInt16LE(off + kV6Inode.mode),
      size: ext ? v.u64(off + kV6Inode.eSize, `v6 inode ${nid} size`) : b.readUInt32LE(off + kV6Inode.cSize),
      iu: b.readUInt32LE(off + kV6Inode.u),
      isize,
      xattrSize,
    };
  }

  getAttr(ref: InodeRef): InodeAttr {
    const h = this._inode(ref);
    const b = this._v.buf;
    const explicit = this.super.explicitUidGid;
    const o = h.off;
    return {
      ref,
      ino: ref,
      mode: h.mode,
      uid: explicit ? (h.ext ? b.readUInt32LE(o + kV6Inode.eUid) : b.readUInt16LE(o + kV6Inode.cUid)) : 0,
      gid: explicit ? (h.ext ? b.readUInt32LE(o + kV6Inode.eGid) : b.readUInt16LE(o + kV6Inode.cGid)) : 0,
      implicitOwner: !explicit,
      size: h.size,
      nlink: h.ext ? b.readUInt32LE(o + kV6Inode.eNlink) : b.readUInt16LE(o + kV6Inode.cNlink),
      mtimeSec: h.ext ? this._v.i64(o + kV6Inode.eMtime, `v6 inode ${ref} mtime`) : 0,
      mtimeNsec: h.ext ? b.readUInt32LE(o + kV6Inode.eMtimeNsec) : 0,
      rdev: h.ext && isDeviceMode(h.mode) ? h.iu : 0,
      blocks: Math.ceil(h.size / 512),
    };
  }

  isDir(ref: InodeRef): boolean {
    return isDirMode(this._inode(ref).mode);
  }

  inodeDigest(ref: InodeRef): Buffer | undefined {
    this._inode(ref);
    return undefined;
  }

  /** Start offset in the buffer of data block `b` (dirs and symlinks); length is the caller's. */
  private _blockStart(h: V6Inode, b: number, nblocks: number): number {
    const bs = this._m.blockSize;
    const last = b === nblocks - 1;
    const len = last ? h.size - b * bs : bs;
    let start: number;
    if (h.layout === V6DataLayout.FlatInline && last) {
      start = h.off + h.isize + h.xattrSize;
    } else if (h.layout === V6DataLayout.ChunkBased) {
      throw this._v.fail('v6 inode', h.off, `nid ${h.nid}: a directory or symlink cannot be chunk-based`);
    } else {
      start = (h.iu + b) * bs;
    }
    this._v.check(start, len, `v6 inode ${h.nid} data block ${b}`);
    return start;
  }

  /** Validates dirent block `b` and returns its entry count; start/len as given. */
  private _direntCount(h: V6Inode, start: number, len: number): number {
    if (len < kV6DirentSize) throw this._v.fail('v6 dirent block', start, `nid ${h.nid}: block of ${len} bytes has no dirent`);
    const nameoff0 = this._v.buf.readUInt16LE(start + kV6Dirent.nameoff);
    if (nameoff0 === 0 || nameoff0 % kV6DirentSize !== 0 || nameoff0 > len) {
      throw this._v.fail('v6 dirent block', start, `nid ${h.nid}: first nameoff ${nameoff0} is invalid`);
    }
    return nameoff0 / kV6DirentSize;
  }

  /** Sets _ns/_ne to the name of entry j of a dirent block. */
  private _entryName(h: V6Inode, start: number, len: number, count: number, j: number): void {
    const b = this._v.buf;
    const ns = b.readUInt16LE(start + j * kV6DirentSize + kV6Dirent.nameoff);
    let ne = j + 1 < count ? b.readUInt16LE(start + (j + 1) * kV6DirentSize + kV6Dirent.nameoff) : len;
    if (ns < count * kV6DirentSize || ne < ns || ne > len) {
      throw this._v.fail('v6 dirent', start + j * kV6DirentSize, `nid ${h.nid}: name offsets ${ns}..${ne} outside ${count * kV6DirentSize}..${len}`);
    }
    if (j + 1 === count) {
      // The last name runs to the block (or tail) end; padding after it is NUL.
      const nul = b.subarray(start + ns, start + ne).indexOf(0);
      if (nul >= 0) ne = ns + nul;
    }
    if (ne === ns || ne - ns > kMaxNameLen) {
      throw this._v.fail('v6 dirent', start + j * kV6DirentSize, `nid ${h.nid}: name length ${ne - ns} is invalid`);
    }
    this._ns = start + ns;
    this._ne = start + ne;
  }

  private _direntNid(h: V6Inode, at: number): number {
    const b = this._v.buf;
    const lo = b.readUInt32LE(at + kV6Dirent.nid);
    const hi = b.readUInt32LE(at + kV6Dirent.nid + 4);
    const nid = hi * 0x1_0000_0000 + lo;
    if (hi > 0x1fffff || this._m.metaBase + nid * kV6InodeSlotSize + kV6CompactInodeSize > this._v.length) {
      throw this._v.fail('v6 dirent', at, `nid ${h.nid}: entry points to nid ${nid} outside the meta area`);
    }
    return nid;
  }

  private _dirInode(ref: InodeRef): V6Inode {
    const h = this._inode(ref);
    if (!isDirMode(h.mode)) throw notDir(this._v.file, ref);
    return h;
  }

  lookup(parent: InodeRef, name: Buffer): InodeRef | undefined {
    const h = this._dirInode(parent);
    if (name.length === 0 || name.length > kMaxNameLen || h.size === 0) return undefined;
    const bs = this._m.blockSize;
    const b = this._v.buf;
    const nblocks = Math.ceil(h.size / bs);
    let lo = 0;
    let hi = nblocks - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const start = this._blockStart(h, mid, nblocks);
      const len = mid === nblocks - 1 ? h.size - mid * bs : bs;
      const count = this._direntCount(h, start, len);
      this._entryName(h, start, len, count, 0);
      if (cmpName(b, this._ns, this._ne, name) > 0) {
        hi = mid - 1;
        continue;
      }
      this._entryName(h, start, len, count, count - 1);
      if (cmpName(b, this._ns, this._ne, name) < 0) {
        lo = mid + 1;
        continue;
      }
      let l = 0;
      let r = count - 1;
      while (l <= r) {
        const j = (l + r) >>> 1;
        this._entryName(h, start, len, count, j);
        const c = cmpName(b, this._ns, this._ne, name);
        if (c === 0) return this._direntNid(h, start + j * kV6DirentSize);
        if (c < 0) l = j + 1;
        else r = j - 1;
      }
      return undefined;
    }
    return undefined;
  }

  /**
   * Offsets are byte positions in the directory data: block × block size + dirent index × 12,
   * so any offset resumes in O(1); offsets between dirents round up to the next one.
   */
  readDir(dir: InodeRef, offset: number, visit: (e: DirEntry) => boolean): void {
    const h = this._dirInode(dir);
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new RafsError(kRafsErrorCodes.WRONG_TYPE, `${this._v.file}: readdir offset ${offset} is invalid`);
    }
    const bs = this._m.blockSize;
    const b = this._v.buf;
    const nblocks = Math.ceil(h.size / bs);
    let first = Math.ceil((offset % bs) / kV6DirentSize);
    for (let blk = Math.floor(offset / bs); blk < nblocks; blk++, first = 0) {
      const start = this._blockStart(h, blk, nblocks);
      const len = blk === nblocks - 1 ? h.size - blk * bs : bs;
      const count = this._direntCount(h, start, len);
      for (let j = first; j < count; j++) {
        const at = start + j * kV6DirentSize;
        this._entryName(h, start, len, count, j);
        const ft = b[at + kV6Dirent.fileType] as number;
        if (ft >= kDtFromFileType.length) throw this._v.fail('v6 dirent', at, `nid ${h.nid}: invalid file type ${ft}`);
        const name = b.subarray(this._ns, this._ne);
        if (name.includes(0x2f) || name.includes(0)) throw this._v.fail('v6 dirent', at, `nid ${h.nid}: name contains '/' or NUL`);
        const entry: DirEntry = {
          name,
          ref: this._direntNid(h, at),
          type: kDtFromFileType[ft] as number,
          nextOffset: j + 1 < count ? blk * bs + (j + 1) * kV6DirentSize : (blk + 1) * bs,
        };
        if (!visit(entry)) return;
      }
    }
  }

  readLink(ref: InodeRef): Buffer {
    const h = this._inode(ref);
    if (!isLnkMode(h.mode)) throw wrongType(this._v.file, ref, 'a symlink');
    if (h.size === 0 || h.size > kMaxSymlinkLen) throw this._v.fail('v6 symlink', h.off, `nid ${ref}: target length ${h.size} is invalid`);
    const bs = this._m.blockSize;
    const nblocks = Math.ceil(h.size / bs);
    if (nblocks === 1) return this._v.buf.subarray(this._blockStart(h, 0, 1), this._blockStart(h, 0, 1) + h.size);
    const parts: Buffer[] = [];
    for (let blk = 0; blk < nblocks; blk++) {
      const start = this._blockStart(h, blk, nblocks);
      parts.push(this._v.buf.subarray(start, start + (blk === nblocks - 1 ? h.size - blk * bs : bs)));
    }
    return Buffer.concat(parts);
  }

  /** Walks inline xattr entries; `fn` gets (prefix, suffix, value) views and returns false to stop. */
  private _xattrs(ref: InodeRef, fn: (prefix: Buffer, suffix: Buffer, value: Buffer) => boolean): void {
    const h = this._inode(ref);
    if (h.xattrSize === 0) return;
    const b = this._v.buf;
    const base = h.off + h.isize;
    if (b[base + kV6XattrSharedCount] !== 0) throw unsupported(this._v.file, `shared xattrs (nid ${ref})`);
    const end = base + h.xattrSize;
    let pos = base + kV6XattrHeaderSize;
    while (pos < end) {
      if (pos + kV6XattrEntry.headerSize > end) throw this._v.fail('v6 xattr entry', pos, `nid ${ref}: truncated entry header`);
      const nameLen = b[pos + kV6XattrEntry.nameLen] as number;
      const index = b[pos + kV6XattrEntry.nameIndex] as number;
      const valueSize = b.readUInt16LE(pos + kV6XattrEntry.valueSize);
      const entLen = alignUp(kV6XattrEntry.headerSize + nameLen + valueSize, 4);
      if (pos + entLen > end) throw this._v.fail('v6 xattr entry', pos, `nid ${ref}: entry of ${entLen} bytes overruns the xattr area`);
      const prefix = kXattrPrefixes.get(index);
      if (!prefix) throw this._v.fail('v6 xattr entry', pos, `nid ${ref}: unknown name index ${index}`);
      const s = pos + kV6XattrEntry.headerSize;
      if (!fn(prefix, b.subarray(s, s + nameLen), b.subarray(s + nameLen, s + nameLen + valueSize))) return;
      pos += entLen;
    }
  }

  listXattrs(ref: InodeRef): Buffer[] {
    const out: Buffer[] = [];
    this._xattrs(ref, (p, s) => {
      out.push(Buffer.concat([p, s]));
      return true;
    });
    return out;
  }

  getXattr(ref: InodeRef, name: Buffer): Buffer | undefined {
    let found: Buffer | undefined;
    this._xattrs(ref, (p, s, value) => {
      if (name.length === p.length + s.length && name.subarray(0, p.length).equals(p) && name.subarray(p.length).equals(s)) {
        found = value;
        return false;
      }
      return true;
    });
    return found;
  }

  chunks(ref: InodeRef): ChunkInfo[] {
    const h = this._inode(ref);
    if (!isRegMode(h.mode)) throw wrongType(this._v.file, ref, 'a regular file');
    if (h.size === 0) return [];
    if (h.layout !== V6DataLayout.ChunkBased) throw unsupported(this._v.file, `regular file with flat data layout (nid ${ref})`);
    return this._chunks.resolve(ref, h.off + alignUp(h.isize + h.xattrSize, 8), h.iu, h.size);
  }

  setBlobMeta(blobIndex: number, meta: BlobChunkMeta): void {
    this._chunks.setBlobMeta(blobIndex, meta);
  }

  blobsNeedingMeta(): number[] {
    return this._chunks.blobsNeedingMeta();
  }

  prefetchRefs(): InodeRef[] {
    const out: InodeRef[] = [];
    const { prefetchTableOffset: off, prefetchTableSize: size } = this._m;
    for (let p = off; p < off + size; p += 4) {
      const nid = this._v.buf.readUInt32LE(p);
      if (nid === 0) break;
      this._inode(nid);
      out.push(nid);
    }
    return out;
  }

  walk(visit: (path: string, ref: InodeRef, attr: InodeAttr) => void): void {
    walkImage(this, this._v.file, visit);
  }

  close(): void {
    this._closed = true;
    this._v = new ByteView(Buffer.alloc(0), this._v.file);
  }
}
