/**
 * Extended attributes as RAFS stores them (rafs-format.md "Inline xattrs" for v6, the v5 xattr
 * table). Only the namespaces EROFS can index exist in RAFS; anything else is refused at build
 * time so an image never silently loses an attribute.
 */
import { kV6XattrHeaderSize, kV6XattrPrefixes } from '../layout/constants.js';
import { BuildError, type Xattr } from './types.js';

const kMaxNameLen = 255;
const kMaxValueLen = 0xffff; // v6 e_value_size is a u16

interface PrefixMatch {
  index: number;
  prefixLen: number;
}

const kPrefixes = kV6XattrPrefixes.map(([index, prefix]) => ({ index, prefix: Buffer.from(prefix) }));

function matchPrefix(name: Buffer): PrefixMatch | undefined {
  for (const { index, prefix } of kPrefixes) {
    if (name.length >= prefix.length && name.subarray(0, prefix.length).equals(prefix)) {
      // The ACL names are whole names: a longer "system.posix_acl_accessX" is not that namespace.
      if ((index === 2 || index === 3) && name.length !== prefix.length) continue;
      return { index, prefixLen: prefix.length };
    }
  }
  return undefined;
}

/** Checks and sorts xattrs of one file; `where` names the file in error messages. */
export function normalizeXattrs(pairs: Xattr[], where: string): Xattr[] {
  const seen = new Set<string>();
  for (const { name, value } of pairs) {
    const shown = JSON.stringify(name.toString('latin1'));
    if (name.length === 0 || name.length > kMaxNameLen) {
      throw new BuildError(`${where}: extended attribute name ${shown} must be 1..${kMaxNameLen} bytes`);
    }
    const m = matchPrefix(name);
    if (!m) {
      throw new BuildError(
        `${where}: extended attribute ${shown} is outside the namespaces RAFS can store ` +
          '(user., trusted., security., system.posix_acl_access, system.posix_acl_default)',
      );
    }
    if (name.length === m.prefixLen && m.index !== 2 && m.index !== 3) {
      throw new BuildError(`${where}: extended attribute ${shown} has an empty name after its namespace`);
    }
    if (value.length > kMaxValueLen) {
      throw new BuildError(`${where}: extended attribute ${shown} value is ${value.length} bytes (max ${kMaxValueLen})`);
    }
    const key = name.toString('latin1');
    if (seen.has(key)) throw new BuildError(`${where}: extended attribute ${shown} appears twice`);
    seen.add(key);
  }
  return [...pairs].sort((a, b) => Buffer.compare(a.name, b.name));
}

const round4 = (n: number): number => (n + 3) & ~3;

/** Size of the v6 inline xattr area (header + 4-aligned entries), 0 without xattrs. */
export function v6XattrSize(xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return 0;
  let size = kV6XattrHeaderSize;
  for (const { name, value } of xattrs) {
    const m = matchPrefix(name);
    if (!m) throw new BuildError(`invalid xattr name ${JSON.stringify(name.toString('latin1'))}`);
    size = round4(size + 4 + name.length - m.prefixLen + value.length);
  }
  return size;
}

/** i_xattr_icount for the area size above: 1 + (size - 12) / 4, 0 without xattrs. */
export function v6XattrIcount(xattrs: readonly Xattr[]): number {
  const size = v6XattrSize(xattrs);
  const icount = size === 0 ? 0 : (size - kV6XattrHeaderSize) / 4 + 1;
  // i_xattr_icount is a u16: about 256 KiB of inline xattrs per inode at most.
  if (icount > 0xffff) throw new BuildError(`extended attributes take ${size} bytes; RAFS v6 stores at most ${(0xffff - 1) * 4 + kV6XattrHeaderSize} per inode`);
  return icount;
}

/** Writes the v6 inline xattr area at `off` (the caller sized it with v6XattrSize). */
export function writeV6Xattrs(buf: Buffer, off: number, xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return off;
  // Header: h_name_filter/reserved u32, h_shared_count 0, reserved[7] — all zero.
  buf.fill(0, off, off + kV6XattrHeaderSize);
  let pos = off + kV6XattrHeaderSize;
  for (const { name, value } of xattrs) {
    const m = matchPrefix(name);
    if (!m) throw new BuildError(`invalid xattr name ${JSON.stringify(name.toString('latin1'))}`);
    const suffix = name.subarray(m.prefixLen);
    buf.writeUInt8(suffix.length, pos);
    buf.writeUInt8(m.index, pos + 1);
    buf.writeUInt16LE(value.length, pos + 2);
    suffix.copy(buf, pos + 4);
    value.copy(buf, pos + 4 + suffix.length);
    const end = pos + 4 + suffix.length + value.length;
    buf.fill(0, end, round4(end - off) + off);
    pos = round4(end - off) + off;
  }
  return pos;
}

const round8 = (n: number): number => (n + 7) & ~7;

/** Content size of the v5 xattr table: Σ (4 + name + NUL + value), before the u64 header. */
export function v5XattrContentSize(xattrs: readonly Xattr[]): number {
  let size = 0;
  for (const { name, value } of xattrs) size += 4 + name.length + 1 + value.length;
  return size;
}

/** Bytes the v5 xattr table occupies in an inode record (u64 size + content, 8-aligned). */
export function v5XattrRecordSize(xattrs: readonly Xattr[]): number {
  return xattrs.length === 0 ? 0 : 8 + round8(v5XattrContentSize(xattrs));
}

/** Writes the v5 xattr table (u64 size, then {u32 pair_size, name, NUL, value}) at `off`. */
export function writeV5Xattrs(buf: Buffer, off: number, xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return off;
  const content = v5XattrContentSize(xattrs);
  buf.writeBigUInt64LE(BigInt(content), off);
  let pos = off + 8;
  for (const { name, value } of xattrs) {
    buf.writeUInt32LE(name.length + 1 + value.length, pos);
    name.copy(buf, pos + 4);
    buf.writeUInt8(0, pos + 4 + name.length);
    value.copy(buf, pos + 5 + name.length);
    pos += 5 + name.length + value.length;
  }
  const end = off + 8 + round8(content);
  buf.fill(0, pos, end);
  return end;
}
