/**
 * RAFS v5 bootstrap writer (rafs-format.md §2.3): superblock, inode offset table, prefetch table,
 * blob table + extended blob table, then one record per entry in index order. Hardlinks get
 * their own record sharing `i_ino`; every record carries a digest (files: hash of their chunk
 * digests; symlinks: of the target; directories: of their children's digests).
 */
import { kChunkFlags, kSuperFlags, kV5ChunkInfoSize, kV5ExtBlobEntrySize, kV5InodeFlags, kV5InodeSize, kV5Magic, kV5SuperBlockSize, kRafsV5 } from '../layout/constants.js';
import { nlinkOf } from './tree.js';
import { algorithmSuperFlags, createDigestHasher } from '../blob/codec.js';
import { BuildError, isDir, isReg, isSymlink, type Entry, type Inode } from './types.js';
import type { ImageParams } from './v6-writer.js';
import { v5XattrContentSize, v5XattrRecordSize, writeV5Xattrs } from './xattrs.js';

const round8 = (n: number): number => (n + 7) & ~7;

/** Pseudo directory size: round_up_4k(Σ(name + 8)), 4096 when empty (upstream's stable rule). */
function v5DirSize(inode: Inode): number {
  let size = 0;
  for (const c of inode.children ?? []) size += c.name.length + 8;
  return size === 0 ? 4096 : Math.ceil(size / 4096) * 4096;
}

function v5Size(inode: Inode): number {
  return isDir(inode) ? v5DirSize(inode) : inode.size;
}

function recordSize(e: Entry): number {
  const inode = e.inode;
  let size = kV5InodeSize + round8(e.name.length) + round8(inode.symlink?.length ?? 0) + v5XattrRecordSize(inode.xattrs);
  if (isReg(inode)) size += (inode.chunks?.length ?? 0) * kV5ChunkInfoSize;
  return size;
}

export function writeV5Bootstrap(entries: readonly Entry[], p: ImageParams, prefetchTable: boolean): Buffer {
  // Digests bottom-up: children always have larger indexes than their directory.
  const digests = new Map<Inode, Buffer>();
  for (let i = entries.length - 1; i >= 0; i--) {
    const inode = entries[i]!.inode;
    if (digests.has(inode)) continue;
    const h = createDigestHasher(p.digester);
    if (isDir(inode)) for (const c of inode.children ?? []) h.update(digests.get(c.inode)!);
    else if (isSymlink(inode)) h.update(inode.symlink ?? Buffer.alloc(0));
    else if (isReg(inode)) for (const c of inode.chunks ?? []) h.update(c.digest);
    digests.set(inode, h.digest());
  }

  const prefetchInos = prefetchTable ? [...new Set(p.prefetch.map((e) => e.inode.ino))].sort((a, b) => a - b) : [];
  const inodeTableOffset = kV5SuperBlockSize;
  const inodeTableSize = round8(entries.length * 4);
  const prefetchOffset = inodeTableOffset + inodeTableSize;
  const prefetchSize = round8(prefetchInos.length * 4);
  const blobTableOffset = prefetchOffset + prefetchSize;
  const blobTable = encodeBlobTable(p);
  const extOffset = blobTableOffset + blobTable.length;
  const extSize = p.blobs.length * kV5ExtBlobEntrySize;
  let off = extOffset + extSize;
  const offsets: number[] = [];
  for (const e of entries) {
    offsets.push(off);
    off += recordSize(e);
  }
  if (off >= 2 ** 32) throw new BuildError('RAFS v5 metadata is limited to 4 GiB');
  const buf = Buffer.alloc(off);

  let hasXattr = false;
  entries.forEach((e, i) => {
    buf.writeUInt32LE(offsets[i]! / 8, inodeTableOffset + i * 4);
    if (e.inode.xattrs.length > 0) hasXattr = true;
    writeRecord(buf, offsets[i]!, e, digests.get(e.inode)!, p);
  });
  prefetchInos.forEach((ino, i) => buf.writeUInt32LE(ino, prefetchOffset + i * 4));
  blobTable.copy(buf, blobTableOffset);
  p.blobs.forEach((b, i) => {
    const o = extOffset + i * kV5ExtBlobEntrySize;
    buf.writeUInt32LE(b.chunkCount, o);
    // Blob features (rafs-format.md); upstream readers treat these 4 bytes as reserved, ours
    // learn from them that an inline-meta blob must be renamed to its file name.
    buf.writeUInt32LE(b.features >>> 0, o + 4);
    buf.writeBigUInt64LE(BigInt(b.uncompressedSize), o + 8);
    buf.writeBigUInt64LE(BigInt(b.compressedSize), o + 16);
  });

  let flags = algorithmSuperFlags(p.compressor, p.digester);
  if (p.explicitUidGid) flags |= kSuperFlags.EXPLICIT_UID_GID;
  if (hasXattr) flags |= kSuperFlags.HAS_XATTR;
  buf.writeUInt32LE(kV5Magic, 0);
  buf.writeUInt32LE(kRafsV5, 4);
  buf.writeUInt32LE(kV5SuperBlockSize, 8);
  buf.writeUInt32LE(p.chunkSize, 12);
  buf.writeBigUInt64LE(BigInt(flags), 16);
  buf.writeBigUInt64LE(BigInt(new Set(entries.map((e) => e.inode)).size), 24);
  buf.writeBigUInt64LE(BigInt(inodeTableOffset), 32);
  buf.writeBigUInt64LE(BigInt(prefetchOffset), 40);
  buf.writeBigUInt64LE(BigInt(blobTableOffset), 48);
  buf.writeUInt32LE(entries.length, 56);
  buf.writeUInt32LE(prefetchInos.length, 60);
  buf.writeUInt32LE(blobTable.length, 64);
  buf.writeUInt32LE(p.blobs.length, 68);
  buf.writeBigUInt64LE(BigInt(extOffset), 72);
  return buf;
}

/** `u32 readahead_offset | u32 readahead_size | id`, entries separated by NUL, padded to 8. */
function encodeBlobTable(p: ImageParams): Buffer {
  if (p.blobs.length === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  p.blobs.forEach((b, i) => {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(b.readaheadSize >>> 0, 4);
    parts.push(head, Buffer.from(b.id, 'utf8'));
    if (i !== p.blobs.length - 1) parts.push(Buffer.alloc(1));
  });
  const raw = Buffer.concat(parts);
  return Buffer.concat([raw, Buffer.alloc(round8(raw.length) - raw.length)]);
}

function writeRecord(buf: Buffer, off: number, e: Entry, digest: Buffer, p: ImageParams): void {
  const inode = e.inode;
  const size = v5Size(inode);
  let flags = 0;
  if (isSymlink(inode)) flags |= kV5InodeFlags.SYMLINK;
  if (inode.xattrs.length > 0) flags |= kV5InodeFlags.XATTR;
  const chunks = isReg(inode) ? (inode.chunks ?? []) : [];
  const blocks = Math.ceil((size + round8(v5XattrContentSize(inode.xattrs))) / 512);
  digest.copy(buf, off);
  buf.writeBigUInt64LE(BigInt(e.parent?.inode.ino ?? 0), off + 32);
  buf.writeBigUInt64LE(BigInt(inode.ino), off + 40);
  buf.writeUInt32LE(p.explicitUidGid ? inode.uid >>> 0 : 0, off + 48);
  buf.writeUInt32LE(p.explicitUidGid ? inode.gid >>> 0 : 0, off + 52);
  buf.writeUInt32LE(inode.mode >>> 0, off + 60);
  buf.writeBigUInt64LE(BigInt(size), off + 64);
  buf.writeBigUInt64LE(BigInt(blocks), off + 72);
  buf.writeBigUInt64LE(BigInt(flags), off + 80);
  buf.writeUInt32LE(nlinkOf(inode), off + 88);
  if (isDir(inode)) {
    buf.writeUInt32LE(e.childIndex ?? 0, off + 92);
    buf.writeUInt32LE(inode.children?.length ?? 0, off + 96);
  } else {
    buf.writeUInt32LE(chunks.length, off + 96);
  }
  if (e.name.length > 0xffff) throw new BuildError('file name too long for RAFS v5');
  buf.writeUInt16LE(e.name.length, off + 100);
  buf.writeUInt16LE(inode.symlink?.length ?? 0, off + 102);
  buf.writeUInt32LE(inode.rdev >>> 0, off + 104);
  buf.writeUInt32LE(inode.mtimeNsec >>> 0, off + 108);
  buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(inode.mtimeSec)), off + 112);
  let pos = off + kV5InodeSize;
  e.name.copy(buf, pos);
  pos += round8(e.name.length);
  if (inode.symlink) {
    inode.symlink.copy(buf, pos);
    pos += round8(inode.symlink.length);
  }
  pos = writeV5Xattrs(buf, pos, inode.xattrs);
  chunks.forEach((c, i) => {
    c.digest.copy(buf, pos);
    buf.writeUInt32LE(0, pos + 32);
    buf.writeUInt32LE(c.compressed ? kChunkFlags.COMPRESSED : 0, pos + 36);
    buf.writeUInt32LE(c.compressedSize, pos + 40);
    buf.writeUInt32LE(c.uncompressedSize, pos + 44);
    buf.writeBigUInt64LE(BigInt(c.compressedOffset), pos + 48);
    buf.writeBigUInt64LE(BigInt(c.uncompressedOffset), pos + 56);
    buf.writeBigUInt64LE(BigInt(i * p.chunkSize), pos + 64);
    buf.writeUInt32LE(c.index, pos + 72);
    pos += kV5ChunkInfoSize;
  });
}
