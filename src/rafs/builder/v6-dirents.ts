/**
 * EROFS directory data (rafs-format.md "Directories"): 12-byte dirents followed by their names,
 * in 4 KiB blocks that no entry straddles, every entry ("." and ".." included) sorted bytewise
 * across all blocks so lookups can binary-search.
 */
import { kV6BlockSize, kV6DirentSize } from '../layout/constants.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../../util/mode-bits.js';

export interface DirentSpec {
  name: Buffer;
  /** Filled in once every inode is placed. */
  nid: number;
  mode: number;
}

/** e_file_type from st_mode (EROFS_FT_*). */
export function fileTypeOf(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 1;
    case S_IFDIR:
      return 2;
    case S_IFCHR:
      return 3;
    case S_IFBLK:
      return 4;
    case S_IFIFO:
      return 5;
    case S_IFSOCK:
      return 6;
    case S_IFLNK:
      return 7;
    default:
      return 0;
  }
}

/** Directory i_size: entries packed in order, rounding up to a block when one would straddle. */
export function direntsSize(sorted: readonly DirentSpec[]): number {
  let size = 0;
  for (const d of sorted) {
    const len = kV6DirentSize + d.name.length;
    if ((size % kV6BlockSize) + len > kV6BlockSize) size = Math.ceil(size / kV6BlockSize) * kV6BlockSize;
    size += len;
  }
  return size;
}

/**
 * Encodes the directory data: a buffer of `size` bytes (the last block is only as long as the
 * tail). Block layout: dirents first (nameoff = offset of the name inside the block), then names
 * back to back; the unused end of a full block stays zero so the last name ends at a NUL.
 */
export function encodeDirents(sorted: readonly DirentSpec[], size: number): Buffer {
  const out = Buffer.alloc(Math.ceil(size / kV6BlockSize) * kV6BlockSize);
  let block = 0;
  let start = 0;
  let used = 0;
  const flush = (end: number): void => {
    const count = end - start;
    const base = block * kV6BlockSize;
    let nameoff = count * kV6DirentSize;
    for (let i = 0; i < count; i++) {
      const d = sorted[start + i]!;
      const off = base + i * kV6DirentSize;
      out.writeBigUInt64LE(BigInt(d.nid), off);
      out.writeUInt16LE(nameoff, off + 8);
      out.writeUInt8(fileTypeOf(d.mode), off + 10);
      d.name.copy(out, base + nameoff);
      nameoff += d.name.length;
    }
  };
  for (let i = 0; i < sorted.length; i++) {
    const len = kV6DirentSize + sorted[i]!.name.length;
    if (used + len > kV6BlockSize) {
      flush(i);
      block++;
      start = i;
      used = 0;
    }
    used += len;
  }
  if (sorted.length > start) flush(sorted.length);
  return out.subarray(0, size);
}
