/**
 * RAFS v6 bootstrap writer: an EROFS image whose regular files are chunk-indexed into external
 * blob devices (rafs-format.md §2.1 "File layout as written by the builder"). Two passes: place
 * every inode (and directory/symlink data blocks) to learn nids, then serialize.
 *
 * Placement: inodes are packed 32-byte aligned from meta_blkaddr + 4096 (root nid 128, as
 * upstream) in upstream's order — a directory, its non-directory children, then each
 * subdirectory. An inode with inline data (FLAT_INLINE) never crosses a block boundary. Whole
 * data blocks of large directories and symlinks go into a block region after the inodes; the
 * chunk info table follows. All inodes are extended (64 B): they carry mtime and 32-bit ids.
 */
import {
  kSuperFlags,
  kV6BlobEntrySize,
  kV6BlockSegmentAlignment,
  kV6BlockSize,
  kV6ChunkAddrSize,
  kV6ChunkHeaderIndexes,
  kV6DevtSlotOff,
  kV6DeviceSlotSize,
  kV6ExtendedInodeSize,
  kV6FeatureCompatRafsV6,
  kV6FeatureIncompatRequired,
  kV6Magic,
  kV6SuperBlockOffset,
  kV6SuperBlockSize,
  kV5ChunkInfoSize,
  kChunkFlags,
} from '../layout/constants.js';
import { algorithmSuperFlags, compressorToEnum, digesterToEnum } from '../blob/codec.js';
import { nlinkOf } from './tree.js';
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFSOCK } from '../../util/mode-bits.js';
import {
  BuildError,
  isDir,
  isReg,
  isSymlink,
  type BlobChunk,
  type WritableCompressor,
  type DigesterName,
  type Entry,
  type Inode,
} from './types.js';
import { direntsSize, encodeDirents, type DirentSpec } from './v6-dirents.js';
import { v6XattrIcount, v6XattrSize, writeV6Xattrs } from './xattrs.js';

export interface ImageBlob {
  id: string;
  chunkCount: number;
  features: number;
  compressedSize: number;
  uncompressedSize: number;
  meta: { ciCompressor: number; ciOffset: number; ciCompressedSize: number; ciUncompressedSize: number } | undefined;
  tocSize: number;
  tocDigest: Buffer;
  /** v5 blob table readahead window (prefetch-policy blob); unused in v6. */
  readaheadSize: number;
}

export interface ImageParams {
  chunkSize: number;
  compressor: WritableCompressor;
  digester: DigesterName;
  explicitUidGid: boolean;
  blobs: ImageBlob[];
  /** Unique chunks of blob 0 (the only blob a single build writes). */
  chunks: readonly BlobChunk[];
  /** Prefetch table entries (exact pattern matches), in pattern order. */
  prefetch: readonly Entry[];
}

const enum Layout {
  FlatPlain = 0,
  FlatInline = 2,
  ChunkBased = 4,
}

interface Placed {
  inode: Inode;
  entry: Entry;
  off: number;
  layout: Layout;
  xsize: number;
  /** Directory/symlink data (full length), dirents filled after placement. */
  data?: Buffer;
  dirents?: DirentSpec[];
  dataSize: number;
  /** First block in the data-block region, or -1. */
  dataBlock: number;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;
const kMaxSymlink = 4095;

export function writeV6Bootstrap(root: Entry, entryCount: number, p: ImageParams): Buffer {
  const nblobs = p.blobs.length;
  if (nblobs > 254) throw new BuildError('RAFS v6 supports at most 254 blobs');
  const blobTableOffset = align(kV6DevtSlotOff * kV6DeviceSlotSize + nblobs * kV6DeviceSlotSize, kV6BlockSize);
  const blobTableSize = nblobs * kV6BlobEntrySize;
  // Upstream writes no prefetch table for an image without blobs.
  const prefetch = nblobs > 0 ? p.prefetch : [];
  const prefetchOffset = prefetch.length > 0 ? blobTableOffset + blobTableSize : 0;
  const metaAddr = nblobs > 0 ? align(blobTableOffset + blobTableSize + prefetch.length * 4, kV6BlockSize) : 0;

  // ---- pass 1: placement ----
  const placed = new Map<Inode, Placed>();
  const order: Placed[] = [];
  let pos = metaAddr + kV6BlockSize;
  let dataBlocks = 0;

  const place = (entry: Entry): void => {
    const inode = entry.inode;
    if (placed.has(inode)) return;
    v6XattrIcount(inode.xattrs); // validates the u16 icount before anything is laid out
    const xsize = v6XattrSize(inode.xattrs);
    const base = kV6ExtendedInodeSize + xsize;
    const pl: Placed = { inode, entry, off: 0, layout: Layout.FlatPlain, xsize, dataSize: 0, dataBlock: -1 };
    if (isReg(inode)) {
      const count = Math.ceil(inode.size / p.chunkSize);
      pos = align(pos, 32);
      pl.off = pos;
      pl.layout = Layout.ChunkBased;
      pos += align(base, kV6ChunkAddrSize) + count * kV6ChunkAddrSize;
    } else if (isDir(inode) || isSymlink(inode)) {
      if (isDir(inode)) {
        pl.dirents = direntSpecs(entry);
        pl.dataSize = direntsSize(pl.dirents);
      } else {
        pl.data = inode.symlink ?? Buffer.alloc(0);
        if (pl.data.length > kMaxSymlink) {
          throw new BuildError(`symlink target of ${entry.name.toString('latin1')} is longer than ${kMaxSymlink} bytes`);
        }
        pl.dataSize = pl.data.length;
      }
      const tail = pl.dataSize % kV6BlockSize;
      let full: number;
      if (tail !== 0 && base + tail <= kV6BlockSize) {
        pos = align(pos, 32);
        if ((pos % kV6BlockSize) + base + tail > kV6BlockSize) pos = align(pos, kV6BlockSize);
        pl.off = pos;
        pl.layout = Layout.FlatInline;
        pos += base + tail;
        full = Math.floor(pl.dataSize / kV6BlockSize);
      } else {
        pos = align(pos, 32);
        pl.off = pos;
        pos += base;
        full = Math.ceil(pl.dataSize / kV6BlockSize);
      }
      if (full > 0) {
        pl.dataBlock = dataBlocks;
        dataBlocks += full;
      }
    } else {
      pos = align(pos, 32);
      pl.off = pos;
      pos += base;
    }
    placed.set(inode, pl);
    order.push(pl);
  };

  const stack: Entry[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    place(dir);
    const subdirs: Entry[] = [];
    for (const c of dir.inode.children ?? []) {
      if (isDir(c.inode)) subdirs.push(c);
      else place(c);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }

  const nidOf = (inode: Inode): number => (placed.get(inode)!.off - metaAddr) / 32;
  const dataStart = align(pos, kV6BlockSize);
  const chunkTableOffset = dataStart + dataBlocks * kV6BlockSize;
  const chunkRows = [...p.chunks].sort((a, b) => Buffer.compare(a.digest, b.digest));
  const chunkTableSize = chunkRows.length * kV5ChunkInfoSize;
  const total = align(chunkTableOffset + chunkTableSize, kV6BlockSize);
  const rootNid = nidOf(root.inode);
  if (rootNid > 0xffff) throw new BuildError('root inode is placed beyond the 16-bit root nid range');

  // ---- pass 2: serialization ----
  const buf = Buffer.alloc(total);
  let hasXattr = false;
  for (const pl of order) {
    if (pl.inode.xattrs.length > 0) hasXattr = true;
    writeInode(buf, pl, p, dataStart, nidOf);
  }
  writeChunkTable(buf, chunkTableOffset, chunkRows);

  // Device slots: blob i is mapped after the bootstrap (and blob i-1), 512 KiB aligned, giving one
  // flat block address space when the image is exported as a single disk.
  let mapPos = total;
  let blocks = 0;
  p.blobs.forEach((b, i) => {
    if (b.uncompressedSize % kV6BlockSize !== 0) throw new BuildError(`blob ${b.id}: uncompressed size is not 4 KiB aligned`);
    const cnt = b.uncompressedSize / kV6BlockSize;
    const mapped = align(mapPos, kV6BlockSegmentAlignment) / kV6BlockSize;
    if (mapped + cnt > 0xffff_ffff) throw new BuildError('image is too large for 32-bit EROFS block addresses');
    mapPos = (mapped + cnt) * kV6BlockSize;
    blocks += cnt;
    const slot = kV6DevtSlotOff * kV6DeviceSlotSize + i * kV6DeviceSlotSize;
    writeBlobId(buf, slot, b.id, 64);
    buf.writeUInt32LE(cnt, slot + 64);
    buf.writeUInt32LE(mapped, slot + 68);
    writeBlobEntry(buf, blobTableOffset + i * kV6BlobEntrySize, b, i, p);
  });
  prefetch.forEach((e, i) => buf.writeUInt32LE(nidOf(e.inode), prefetchOffset + i * 4));

  const sb = kV6SuperBlockOffset;
  buf.writeUInt32LE(kV6Magic, sb);
  buf.writeUInt32LE(kV6FeatureCompatRafsV6, sb + 8);
  buf.writeUInt8(12, sb + 12);
  buf.writeUInt16LE(rootNid, sb + 14);
  buf.writeBigUInt64LE(BigInt(entryCount), sb + 16);
  buf.writeUInt32LE(blocks >>> 0, sb + 36);
  buf.writeUInt32LE(metaAddr / kV6BlockSize, sb + 40);
  buf.writeUInt32LE(kV6FeatureIncompatRequired, sb + 80);
  buf.writeUInt16LE(nblobs, sb + 86);
  buf.writeUInt16LE(kV6DevtSlotOff, sb + 88);

  const ext = kV6SuperBlockOffset + kV6SuperBlockSize;
  let flags = algorithmSuperFlags(p.compressor, p.digester) | kSuperFlags.ENCRYPTION_NONE;
  if (p.explicitUidGid) flags |= kSuperFlags.EXPLICIT_UID_GID;
  if (hasXattr) flags |= kSuperFlags.HAS_XATTR;
  if (p.blobs.every((b) => (b.features & 0x20) !== 0)) flags |= kSuperFlags.INLINED_CHUNK_DIGEST;
  buf.writeBigUInt64LE(BigInt(flags >>> 0), ext);
  buf.writeBigUInt64LE(BigInt(blobTableOffset), ext + 8);
  buf.writeUInt32LE(blobTableSize, ext + 16);
  buf.writeUInt32LE(p.chunkSize, ext + 20);
  buf.writeBigUInt64LE(BigInt(chunkTableOffset), ext + 24);
  buf.writeBigUInt64LE(BigInt(chunkTableSize), ext + 32);
  buf.writeBigUInt64LE(BigInt(prefetchOffset), ext + 40);
  buf.writeUInt32LE(prefetch.length * 4, ext + 48);
  return buf;
}

function direntSpecs(entry: Entry): DirentSpec[] {
  const parent = entry.parent ?? entry;
  const list: DirentSpec[] = [
    { name: Buffer.from('.'), nid: 0, mode: entry.inode.mode },
    { name: Buffer.from('..'), nid: 0, mode: parent.inode.mode },
  ];
  for (const c of entry.inode.children ?? []) list.push({ name: c.name, nid: 0, mode: c.inode.mode });
  return list.sort((a, b) => Buffer.compare(a.name, b.name));
}

function writeInode(
  buf: Buffer,
  pl: Placed,
  p: ImageParams,
  dataStart: number,
  nidOf: (i: Inode) => number,
): void {
  const { inode, off } = pl;
  let size = 0;
  let u = 0;
  const type = inode.mode & S_IFMT;
  if (pl.layout === Layout.ChunkBased) {
    size = inode.size;
    u = chunkFormat(inode, p.chunkSize);
  } else if (pl.data !== undefined || pl.dirents !== undefined) {
    if (pl.dirents) {
      const dirEntry = pl.entry;
      const parent = dirEntry.parent ?? dirEntry;
      const children = new Map<string, Inode>();
      for (const c of dirEntry.inode.children ?? []) children.set(c.name.toString('latin1'), c.inode);
      for (const d of pl.dirents) {
        const n = d.name.toString('latin1');
        d.nid = n === '.' ? nidOf(dirEntry.inode) : n === '..' ? nidOf(parent.inode) : nidOf(children.get(n)!);
      }
      pl.data = encodeDirents(pl.dirents, pl.dataSize);
    }
    size = pl.dataSize;
    // Tail-only inline data has no block; point i_u at the inode's own block like upstream.
    u = pl.dataBlock >= 0 ? dataStart / kV6BlockSize + pl.dataBlock : Math.floor(off / kV6BlockSize);
    const data = pl.data!;
    const tailLen = pl.layout === Layout.FlatInline ? size % kV6BlockSize : 0;
    const fullLen = size - tailLen;
    if (fullLen > 0) data.copy(buf, dataStart + pl.dataBlock * kV6BlockSize, 0, fullLen);
    if (tailLen > 0) data.copy(buf, off + kV6ExtendedInodeSize + pl.xsize, fullLen, size);
  } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO || type === S_IFSOCK) {
    u = inode.rdev >>> 0;
  }
  buf.writeUInt16LE(1 | (pl.layout << 1), off);
  buf.writeUInt16LE(v6XattrIcount(inode.xattrs), off + 2);
  buf.writeUInt16LE(inode.mode & 0xffff, off + 4);
  buf.writeBigUInt64LE(BigInt(size), off + 8);
  buf.writeUInt32LE(u >>> 0, off + 16);
  buf.writeUInt32LE(inode.ino >>> 0, off + 20);
  buf.writeUInt32LE(p.explicitUidGid ? inode.uid >>> 0 : 0, off + 24);
  buf.writeUInt32LE(p.explicitUidGid ? inode.gid >>> 0 : 0, off + 28);
  buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(inode.mtimeSec)), off + 32);
  buf.writeUInt32LE(inode.mtimeNsec >>> 0, off + 40);
  buf.writeUInt32LE(nlinkOf(inode) >>> 0, off + 44);
  writeV6Xattrs(buf, off + kV6ExtendedInodeSize, inode.xattrs);
  if (pl.layout === Layout.ChunkBased) {
    let idx = align(off + kV6ExtendedInodeSize + pl.xsize, kV6ChunkAddrSize);
    for (const c of inode.chunks ?? []) {
      buf.writeUInt16LE(c.index & 0xffff, idx);
      // blob index + 1 in the low byte (device 0 is the bootstrap), chunk index bits 16..23 above.
      buf.writeUInt16LE(1 | (((c.index >>> 16) & 0xff) << 8), idx + 2);
      buf.writeUInt32LE(c.uncompressedOffset / kV6BlockSize, idx + 4);
      idx += kV6ChunkAddrSize;
    }
  }
}

/**
 * i_u of a chunk-based file. When all chunks are contiguous in the blob and the file spans more
 * than one chunk, upstream advertises one chunk of next_power_of_two(size) so the EROFS kernel
 * maps the whole file as a single extent; the index count stays ceil(size / chunk_size).
 */
function chunkFormat(inode: Inode, chunkSize: number): number {
  let bits = Math.log2(chunkSize);
  const chunks = inode.chunks ?? [];
  if (inode.size > chunkSize) {
    let contiguous = true;
    for (let i = 1; i < chunks.length; i++) {
      if (chunks[i - 1]!.uncompressedOffset + chunkSize !== chunks[i]!.uncompressedOffset) {
        contiguous = false;
        break;
      }
    }
    if (contiguous) bits = Math.ceil(Math.log2(inode.size));
  }
  return kV6ChunkHeaderIndexes | (bits - 12);
}

function writeChunkTable(buf: Buffer, off: number, rows: readonly BlobChunk[]): void {
  for (const c of rows) {
    c.digest.copy(buf, off);
    buf.writeUInt32LE(0, off + 32);
    buf.writeUInt32LE(c.compressed ? kChunkFlags.COMPRESSED : 0, off + 36);
    buf.writeUInt32LE(c.compressedSize, off + 40);
    buf.writeUInt32LE(c.uncompressedSize, off + 44);
    buf.writeBigUInt64LE(BigInt(c.compressedOffset), off + 48);
    buf.writeBigUInt64LE(BigInt(c.uncompressedOffset), off + 56);
    buf.writeBigUInt64LE(BigInt(c.fileOffset), off + 64);
    buf.writeUInt32LE(c.index, off + 72);
    off += kV5ChunkInfoSize;
  }
}

export function writeBlobId(buf: Buffer, off: number, id: string, max: number): void {
  const bytes = Buffer.from(id, 'utf8');
  if (bytes.length > max) throw new BuildError(`blob id ${id} is longer than ${max} bytes`);
  bytes.copy(buf, off);
}

function writeBlobEntry(buf: Buffer, off: number, b: ImageBlob, index: number, p: ImageParams): void {
  writeBlobId(buf, off, b.id, 64);
  buf.writeUInt32LE(index, off + 64);
  buf.writeUInt32LE(p.chunkSize, off + 68);
  buf.writeUInt32LE(b.chunkCount, off + 72);
  buf.writeUInt32LE(compressorToEnum(p.compressor), off + 76);
  buf.writeUInt32LE(digesterToEnum(p.digester), off + 80);
  buf.writeUInt32LE(b.features >>> 0, off + 84);
  buf.writeBigUInt64LE(BigInt(b.compressedSize), off + 88);
  buf.writeBigUInt64LE(BigInt(b.uncompressedSize), off + 96);
  buf.writeUInt32LE(b.tocSize, off + 104);
  if (b.meta) {
    buf.writeUInt32LE(b.meta.ciCompressor, off + 108);
    buf.writeBigUInt64LE(BigInt(b.meta.ciOffset), off + 112);
    buf.writeBigUInt64LE(BigInt(b.meta.ciCompressedSize), off + 120);
    buf.writeBigUInt64LE(BigInt(b.meta.ciUncompressedSize), off + 128);
  }
  b.tocDigest.copy(buf, off + 136, 0, 32);
}
