/**
 * RAFS v5 reader over one Buffer. The inode table maps inode numbers to 8-byte-aligned record
 * offsets; records are decoded on demand. A directory's children are the contiguous, name-sorted
 * inode range [child_index, child_index + child_count), so lookup is a binary search and readdir
 * offsets are simply 0 ".", 1 "..", 2 + i for child i.
 */
import { alignUp, ByteView, readI64, readU64 } from '../layout/bytes.js';
import { kBlobFeatures, kMaxChunkSize, kMinChunkSize, kSuperFlags, kV5ChunkInfoSize, kV5ExtBlobEntrySize, kV5InodeFlags, kV5InodeSize, kV5Magic, kV5SuperBlockSize, kRafsV5 } from '../layout/constants.js';
import { kV5Alignment, kV5Chunk, kV5ExtBlob, kV5Inode, kV5Sb } from '../layout/v5-offsets.js';
import { kRafsErrorCodes, RafsError } from '../layout/errors.js';
import type { BlobChunkMeta } from '../blob/meta.js';
import { noBlobMeta } from '../blob/types.js';
import { isDirMode, isLnkMode, isRegMode } from '../../util/mode-bits.js';
import { algorithmsFromFlags, cmpName, DT_DIR, dtFromMode, notDir, walkImage, wrongType } from './common.js';
import type { BlobInfo, ChunkInfo, DirEntry, InodeAttr, InodeRef, RafsImage, RafsSuper } from './types.js';

const kMaxNameSize = 256;
const kDot = Buffer.from('.');
const kDotDot = Buffer.from('..');

interface V5Rec {
  ref: number;
  off: number;
  mode: number;
  flags: number;
  size: number;
  nameSize: number;
  symlinkSize: number;
  childIndex: number;
  childCount: number;
  /** End of inode + name + symlink (start of xattrs or chunks). */
  end: number;
}

export function isV5(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32LE(0) === kV5Magic;
}

export class V5Image implements RafsImage {
  readonly super: RafsSuper;
  readonly blobs: readonly BlobInfo[];
  private _v: ByteView;
  private readonly _tableOff: number;
  private readonly _entries: number;
  private readonly _pfOff: number;
  private readonly _pfEntries: number;
  private _closed = false;

  constructor(buf: Buffer, file: string) {
    const v = (this._v = new ByteView(buf, file));
    const w = 'v5 superblock';
    v.check(0, kV5SuperBlockSize, w);
    if (v.u32(kV5Sb.magic, w) !== kV5Magic) throw v.fail(w, kV5Sb.magic, 'bad magic');
    if (v.u32(kV5Sb.fsVersion, w) !== kRafsV5) throw v.fail(w, kV5Sb.fsVersion, 'version is not 0x500');
    if (v.u32(kV5Sb.sbSize, w) !== kV5SuperBlockSize) throw v.fail(w, kV5Sb.sbSize, 'superblock size is not 8192');
    const chunkSize = v.u32(kV5Sb.blockSize, w);
    if ((chunkSize & (chunkSize - 1)) !== 0 || chunkSize < kMinChunkSize || chunkSize > kMaxChunkSize) {
      throw v.fail(w, kV5Sb.blockSize, `chunk size ${chunkSize} is not a power of two in 4 KiB..16 MiB`);
    }
    const flags = v.u32(kV5Sb.flags, w);
    const { compressor, digester } = algorithmsFromFlags(flags, file, kV5Sb.flags);
    this._tableOff = v.u64(kV5Sb.inodeTableOffset, w);
    this._entries = v.u32(kV5Sb.inodeTableEntries, w);
    if (this._entries === 0 || this._tableOff < kV5SuperBlockSize) throw v.fail(w, kV5Sb.inodeTableOffset, 'inode table is empty or overlaps the superblock');
    v.check(this._tableOff, this._entries * 4, 'v5 inode table');
    this._pfOff = v.u64(kV5Sb.prefetchTableOffset, w);
    this._pfEntries = v.u32(kV5Sb.prefetchTableEntries, w);
    if (this._pfEntries > 0) v.check(this._pfOff, this._pfEntries * 4, 'v5 prefetch table');
    this.blobs = this._parseBlobs(chunkSize, compressor, digester);
    this.super = {
      version: 5,
      flags,
      chunkSize,
      compressor,
      digester,
      explicitUidGid: (flags & kSuperFlags.EXPLICIT_UID_GID) !== 0,
      hasXattr: (flags & kSuperFlags.HAS_XATTR) !== 0,
      inodeCount: v.u64(kV5Sb.inodesCount, w),
      rootRef: 1,
      blockSize: 4096,
      metaSize: buf.length,
      inlinedChunkDigest: false,
      tarfs: false,
    };
    if (!isDirMode(this._rec(1).mode)) throw v.fail('v5 root inode', this._tableOff, 'inode 1 is not a directory');
  }

  private _parseBlobs(chunkSize: number, compressor: RafsSuper['compressor'], digester: RafsSuper['digester']): BlobInfo[] {
    const v = this._v;
    const w = 'v5 superblock';
    const btOff = v.u64(kV5Sb.blobTableOffset, w);
    const btSize = v.u32(kV5Sb.blobTableSize, w);
    const extCount = v.u32(kV5Sb.extendedBlobTableEntries, w);
    const extOff = v.u64(kV5Sb.extendedBlobTableOffset, w);
    const table = v.sub(btOff, btSize, 'v5 blob table');
    if (extCount > 0) v.check(extOff, extCount * kV5ExtBlobEntrySize, 'v5 extended blob table');
    const blobs: BlobInfo[] = [];
    let pos = 0;
    // Entries: u32 readahead offset, u32 readahead size, id, '\0' separator (none after the last).
    while (table.length - pos > 8) {
      const nul = table.indexOf(0, pos + 8);
      const idEnd = nul < 0 ? table.length : nul;
      const blobId = table.toString('latin1', pos + 8, idEnd);
      if (blobId.length === 0 || !/^[\x21-\x7e]+$/.test(blobId)) throw v.fail('v5 blob table', btOff + pos, 'blob id is empty or not printable ASCII');
      const index = blobs.length;
      if (extCount > 0 && index >= extCount) throw v.fail('v5 extended blob table', extOff, `has ${extCount} entries, blob table has more`);
      const e = extOff + index * kV5ExtBlobEntrySize;
      blobs.push({
        index,
        blobId,
        chunkCount: extCount > 0 ? v.u32(e + kV5ExtBlob.chunkCount, 'v5 extended blob entry') : 0,
        chunkSize,
        compressor,
        digester,
        features: extCount > 0 ? v.u32(e + kV5ExtBlob.features, 'v5 extended blob entry') : kBlobFeatures.V5_NO_EXT_BLOB_TABLE,
        compressedSize: extCount > 0 ? v.u64(e + kV5ExtBlob.compressedSize, 'v5 extended blob entry') : 0,
        uncompressedSize: extCount > 0 ? v.u64(e + kV5ExtBlob.uncompressedSize, 'v5 extended blob entry') : 0,
        ...noBlobMeta(),
        readaheadOffset: table.readUInt32LE(pos),
        readaheadSize: table.readUInt32LE(pos + 4),
      });
      pos = idEnd + 1;
    }
    return blobs;
  }

  /** Record offset of inode `ref`, with the fixed 128-byte part inside the buffer. */
  private _recOff(ref: InodeRef): number {
    if (this._closed) throw new RafsError(kRafsErrorCodes.NOT_FOUND, `${this._v.file}: image is closed`);
    const v = this._v;
    if (!Number.isSafeInteger(ref) || ref < 1 || ref > this._entries) {
      throw new RafsError(kRafsErrorCodes.BAD_INODE, `${v.file}: inode ${ref} is outside 1..${this._entries}`);
    }
    const off = v.buf.readUInt32LE(this._tableOff + (ref - 1) * 4) * kV5Alignment;
    if (off < kV5SuperBlockSize || off + kV5InodeSize > v.length) {
      throw v.fail('v5 inode table', this._tableOff + (ref - 1) * 4, `inode ${ref} record offset ${off} is out of range`);
    }
    return off;
  }

  private _rec(ref: InodeRef): V5Rec {
    const v = this._v;
    const b = v.buf;
    const off = this._recOff(ref);
    const nameSize = b.readUInt16LE(off + kV5Inode.nameSize);
    const symlinkSize = b.readUInt16LE(off + kV5Inode.symlinkSize);
    if (nameSize > kMaxNameSize) throw v.fail('v5 inode', off, `inode ${ref}: name size ${nameSize} > 256`);
    const end = off + kV5InodeSize + alignUp(nameSize, kV5Alignment) + alignUp(symlinkSize, kV5Alignment);
    v.check(off, end - off, `v5 inode ${ref}`);
    return {
      ref,
      off,
      mode: b.readUInt32LE(off + kV5Inode.mode),
      flags: b.readUInt32LE(off + kV5Inode.flags),
      size: readU64(b, off + kV5Inode.size, v.file, `v5 inode ${ref} size`),
      nameSize,
      symlinkSize,
      childIndex: b.readUInt32LE(off + kV5Inode.childIndex),
      childCount: b.readUInt32LE(off + kV5Inode.childCount),
      end,
    };
  }

  getAttr(ref: InodeRef): InodeAttr {
    const r = this._rec(ref);
    const b = this._v.buf;
    const file = this._v.file;
    const explicit = this.super.explicitUidGid;
    const ino = readU64(b, r.off + kV5Inode.ino, file, `v5 inode ${ref} ino`);
    if (ino === 0) throw this._v.fail('v5 inode', r.off, `inode ${ref}: i_ino is 0`);
    return {
      ref,
      ino,
      mode: r.mode,
      uid: explicit ? b.readUInt32LE(r.off + kV5Inode.uid) : 0,
      gid: explicit ? b.readUInt32LE(r.off + kV5Inode.gid) : 0,
      implicitOwner: !explicit,
      size: r.size,
      nlink: b.readUInt32LE(r.off + kV5Inode.nlink),
      mtimeSec: readI64(b, r.off + kV5Inode.mtime, file, `v5 inode ${ref} mtime`),
      mtimeNsec: b.readUInt32LE(r.off + kV5Inode.mtimeNsec),
      rdev: b.readUInt32LE(r.off + kV5Inode.rdev),
      blocks: readU64(b, r.off + kV5Inode.blocks, file, `v5 inode ${ref} blocks`),
    };
  }

  isDir(ref: InodeRef): boolean {
    return isDirMode(this._rec(ref).mode);
  }

  /** The inode's digest (regular: H(chunk digests); symlink: H(target); dir: H(child digests)). */
  inodeDigest(ref: InodeRef): Buffer {
    const r = this._rec(ref);
    return this._v.buf.subarray(r.off + kV5Inode.digest, r.off + kV5Inode.digest + 32);
  }

  /** A child's name: non-empty, without '/' or NUL (only the root is nameless). */
  private _name(r: V5Rec): Buffer {
    const name = this._v.buf.subarray(r.off + kV5InodeSize, r.off + kV5InodeSize + r.nameSize);
    if (name.length === 0 || name.includes(0x2f) || name.includes(0)) {
      throw this._v.fail('v5 inode', r.off, `inode ${r.ref}: invalid name ${JSON.stringify(name.toString('latin1'))}`);
    }
    return name;
  }

  private _dir(ref: InodeRef): V5Rec {
    const r = this._rec(ref);
    if (!isDirMode(r.mode)) throw notDir(this._v.file, ref);
    if (r.childCount > 0 && (r.childIndex < 1 || r.childIndex + r.childCount - 1 > this._entries)) {
      throw this._v.fail('v5 inode', r.off, `inode ${ref}: children ${r.childIndex}+${r.childCount} exceed ${this._entries} inodes`);
    }
    return r;
  }

  private _parent(r: V5Rec): InodeRef {
    if (r.ref === 1) return 1;
    const p = readU64(this._v.buf, r.off + kV5Inode.parent, this._v.file, `v5 inode ${r.ref} parent`);
    if (p < 1 || p > this._entries) throw this._v.fail('v5 inode', r.off, `inode ${r.ref}: parent ${p} is out of range`);
    return p;
  }

  lookup(parent: InodeRef, name: Buffer): InodeRef | undefined {
    const r = this._dir(parent);
    if (name.equals(kDot)) return parent;
    if (name.equals(kDotDot)) return this._parent(r);
    const b = this._v.buf;
    let lo = 0;
    let hi = r.childCount - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      // Hot path: compare the name in place instead of decoding the whole record.
      const off = this._recOff(r.childIndex + mid);
      const size = b.readUInt16LE(off + kV5Inode.nameSize);
      if (size === 0 || size > kMaxNameSize || off + kV5InodeSize + size > b.length) {
        throw this._v.fail('v5 inode', off, `inode ${r.childIndex + mid}: name size ${size} is invalid`);
      }
      const c = cmpName(b, off + kV5InodeSize, off + kV5InodeSize + size, name);
      if (c === 0) return r.childIndex + mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  readDir(dir: InodeRef, offset: number, visit: (e: DirEntry) => boolean): void {
    const r = this._dir(dir);
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new RafsError(kRafsErrorCodes.WRONG_TYPE, `${this._v.file}: readdir offset ${offset} is invalid`);
    }
    if (offset === 0 && !visit({ name: kDot, ref: dir, type: DT_DIR, nextOffset: 1 })) return;
    if (offset <= 1 && !visit({ name: kDotDot, ref: this._parent(r), type: DT_DIR, nextOffset: 2 })) return;
    for (let i = Math.max(0, offset - 2); i < r.childCount; i++) {
      const c = this._rec(r.childIndex + i);
      if (!visit({ name: this._name(c), ref: c.ref, type: dtFromMode(c.mode), nextOffset: i + 3 })) return;
    }
  }

  readLink(ref: InodeRef): Buffer {
    const r = this._rec(ref);
    if (!isLnkMode(r.mode)) throw wrongType(this._v.file, ref, 'a symlink');
    if (r.symlinkSize === 0) throw this._v.fail('v5 inode', r.off, `symlink ${ref} has an empty target`);
    const at = r.off + kV5InodeSize + alignUp(r.nameSize, kV5Alignment);
    return this._v.buf.subarray(at, at + r.symlinkSize);
  }

  /** [start, end) of the xattr pairs, or undefined; end of the xattr area in `next`. */
  private _xattrArea(r: V5Rec): { start: number; end: number; next: number } | undefined {
    if (!(r.flags & kV5InodeFlags.XATTR)) return undefined;
    const size = this._v.u64(r.end, `v5 xattr table of inode ${r.ref}`);
    this._v.check(r.end + 8, alignUp(size, kV5Alignment), `v5 xattr table of inode ${r.ref}`);
    return { start: r.end + 8, end: r.end + 8 + size, next: r.end + 8 + alignUp(size, kV5Alignment) };
  }

  private _xattrs(ref: InodeRef, fn: (name: Buffer, value: Buffer) => boolean): void {
    const r = this._rec(ref);
    const a = this._xattrArea(r);
    if (!a) return;
    const b = this._v.buf;
    let pos = a.start;
    // Pairs: u32 pair size, then "name\0value" of that size.
    while (pos < a.end) {
      if (pos + 4 > a.end) throw this._v.fail('v5 xattr pair', pos, `inode ${ref}: truncated pair size`);
      const n = b.readUInt32LE(pos);
      if (pos + 4 + n > a.end) throw this._v.fail('v5 xattr pair', pos, `inode ${ref}: pair of ${n} bytes overruns the table`);
      const pair = b.subarray(pos + 4, pos + 4 + n);
      const nul = pair.indexOf(0);
      if (nul <= 0) throw this._v.fail('v5 xattr pair', pos, `inode ${ref}: pair has no name terminator`);
      if (!fn(pair.subarray(0, nul), pair.subarray(nul + 1))) return;
      pos += 4 + n;
    }
  }

  listXattrs(ref: InodeRef): Buffer[] {
    const out: Buffer[] = [];
    this._xattrs(ref, (n) => {
      out.push(Buffer.from(n));
      return true;
    });
    return out;
  }

  getXattr(ref: InodeRef, name: Buffer): Buffer | undefined {
    let found: Buffer | undefined;
    this._xattrs(ref, (n, value) => {
      if (!n.equals(name)) return true;
      found = value;
      return false;
    });
    return found;
  }

  chunks(ref: InodeRef): ChunkInfo[] {
    const r = this._rec(ref);
    const v = this._v;
    if (!isRegMode(r.mode)) throw wrongType(v.file, ref, 'a regular file');
    const chunkSize = this.super.chunkSize;
    const hasHole = (r.flags & kV5InodeFlags.HAS_HOLE) !== 0;
    if (!hasHole && r.childCount !== Math.ceil(r.size / chunkSize)) {
      throw v.fail('v5 inode', r.off, `inode ${ref}: ${r.childCount} chunks for size ${r.size}`);
    }
    const start = this._xattrArea(r)?.next ?? r.end;
    v.check(start, r.childCount * kV5ChunkInfoSize, `v5 chunk infos of inode ${ref}`);
    const b = v.buf;
    const out: ChunkInfo[] = [];
    let prevEnd = 0;
    for (let i = 0; i < r.childCount; i++) {
      const p = start + i * kV5ChunkInfoSize;
      const w = `v5 chunk info of inode ${ref}`;
      const c: ChunkInfo = {
        fileOffset: readU64(b, p + kV5Chunk.fileOffset, v.file, w),
        blobIndex: b.readUInt32LE(p + kV5Chunk.blobIndex),
        chunkIndex: b.readUInt32LE(p + kV5Chunk.index),
        compressedOffset: readU64(b, p + kV5Chunk.compressedOffset, v.file, w),
        compressedSize: b.readUInt32LE(p + kV5Chunk.compressedSize),
        uncompressedOffset: readU64(b, p + kV5Chunk.uncompressedOffset, v.file, w),
        uncompressedSize: b.readUInt32LE(p + kV5Chunk.uncompressedSize),
        compressed: (b.readUInt32LE(p + kV5Chunk.flags) & 1) !== 0,
        digest: b.subarray(p + kV5Chunk.digest, p + kV5Chunk.digest + 32),
      };
      // Chunks are sorted and disjoint; without holes chunk i starts at i × chunk size.
      const bad =
        c.blobIndex >= this.blobs.length ||
        c.uncompressedSize > chunkSize ||
        c.fileOffset < prevEnd ||
        c.fileOffset + c.uncompressedSize > r.size ||
        (!hasHole && c.fileOffset !== i * chunkSize);
      if (bad) throw v.fail(w, p, `chunk ${i} (blob ${c.blobIndex}, file offset ${c.fileOffset}, size ${c.uncompressedSize}) is inconsistent`);
      prevEnd = c.fileOffset + c.uncompressedSize;
      out.push(c);
    }
    return out;
  }

  setBlobMeta(blobIndex: number, _meta: BlobChunkMeta): void {
    if (!this.blobs[blobIndex]) throw new RafsError(kRafsErrorCodes.NOT_FOUND, `${this._v.file}: no blob with index ${blobIndex}`);
    // v5 chunk infos are complete in the bootstrap; blob meta is not needed.
  }

  blobsNeedingMeta(): number[] {
    return [];
  }

  prefetchRefs(): InodeRef[] {
    const out: InodeRef[] = [];
    for (let i = 0; i < this._pfEntries; i++) {
      const ino = this._v.buf.readUInt32LE(this._pfOff + i * 4);
      if (ino === 0) break;
      this._rec(ino);
      out.push(ino);
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
