/**
 * The host side of the overlay (overlay-fs.ts): the upper directory as overlayfs(5) defines it.
 * - A whiteout is a character device 0/0: it hides the lower entry of that name (and is itself
 *   never shown).
 * - A directory with the xattr `trusted.overlay.opaque` (or `user.overlay.opaque`, the userxattr
 *   spelling) set to "y" is opaque: the lower directory of that name contributes nothing.
 * - The private xattrs of overlayfs (`trusted.overlay.*`, `user.overlay.*`) are never shown.
 * Attributes come from lstat with nanosecond times; nothing here follows a symlink (lstat,
 * readlink, lgetxattr, and O_NOFOLLOW opens whose inode is compared with the node's).
 */
import type { BigIntStats } from 'node:fs';
import { constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, open, readdir, readlink, statfs } from 'node:fs/promises';

import type { FuseAttr, FuseStatfs } from '../fuse/index.js';
import { FuseErrno, fuseErrno, kErrno } from '../fuse/index.js';
import { readXattrs } from '../native/index.js';

const kPrivatePrefixes = [Buffer.from('trusted.overlay.'), Buffer.from('user.overlay.')];
const kOpaqueNames = [Buffer.from('trusted.overlay.opaque'), Buffer.from('user.overlay.opaque')];
const kSlash = Buffer.from('/');

/** What an upper name is: hidden (whiteout), a directory, or another file. */
export type UpperKind = 'whiteout' | 'dir' | 'file';

export function upperKind(st: BigIntStats): UpperKind {
  if (st.isCharacterDevice() && st.rdev === 0n) return 'whiteout';
  return st.isDirectory() ? 'dir' : 'file';
}

/** The identity hardlinks share: one node per host inode. */
export function inodeKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

function isPrivateXattr(name: Buffer): boolean {
  return kPrivatePrefixes.some((p) => name.length >= p.length && name.subarray(0, p.length).equals(p));
}

/** Upper directory entries and files, addressed by paths relative to its root (raw bytes). */
export class UpperDir {
  private readonly _root: Buffer;

  constructor(root: string) {
    this._root = Buffer.from(root.replace(/\/+$/, '') || '/');
  }

  /** The host path of `rel` ("" is the root; otherwise "/a/b"). */
  path(rel: Buffer): Buffer {
    return rel.length === 0 ? this._root : Buffer.concat([this._root, rel]);
  }

  static child(rel: Buffer, name: Buffer): Buffer {
    return Buffer.concat([rel, kSlash, name]);
  }

  /** lstat, or undefined when nothing of that name exists (ENOENT, or a non-directory parent). */
  async stat(rel: Buffer): Promise<BigIntStats | undefined> {
    try {
      return await lstat(this.path(rel), { bigint: true });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  /** The names of directory `rel` (bytes, unsorted as the host lists them; no "." or ".."). */
  list(rel: Buffer): Promise<Buffer[]> {
    return readdir(this.path(rel), { encoding: 'buffer' });
  }

  readlink(rel: Buffer): Promise<Buffer> {
    return readlink(this.path(rel), { encoding: 'buffer' });
  }

  /** The visible xattrs of `rel` (overlayfs' own are left out). */
  xattrs(rel: Buffer): [Buffer, Buffer][] {
    return readXattrs(this.path(rel)).filter(([n]) => !isPrivateXattr(n));
  }

  /** True when directory `rel` is opaque. */
  opaque(rel: Buffer): boolean {
    const y = Buffer.from('y');
    return readXattrs(this.path(rel)).some(([n, v]) => kOpaqueNames.some((o) => o.equals(n)) && v.equals(y));
  }

  /**
   * Opens regular file `rel` for reading. The final component is not followed, and the opened
   * inode must be the node's (`key`): a file swapped in since the lookup is refused as ESTALE.
   */
  async openFile(rel: Buffer, key: string): Promise<FileHandle | FuseErrno> {
    const fh = await open(this.path(rel), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile()) throw fuseErrno(kErrno.EACCES);
      if (inodeKey(st) !== key) throw fuseErrno(kErrno.ESTALE);
      return fh;
    } catch (err) {
      await fh.close();
      if (err instanceof FuseErrno) return err;
      throw err;
    }
  }

  async statfs(): Promise<FuseStatfs> {
    const s = await statfs(this._root);
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }
}

function timeOf(ns: bigint): [number, number] {
  const sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  let s = sec;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    s -= 1n;
  }
  return [Number(s), Number(nsec)];
}

/** The kernel-visible attributes of an upper inode as node `ino`. */
export function upperAttr(st: BigIntStats, ino: number, nlink = Number(st.nlink)): FuseAttr {
  const [atime, atimeNsec] = timeOf(st.atimeNs);
  const [mtime, mtimeNsec] = timeOf(st.mtimeNs);
  const [ctime, ctimeNsec] = timeOf(st.ctimeNs);
  return {
    ino,
    mode: Number(st.mode),
    nlink,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    blocks: Number(st.blocks),
    blksize: 4096,
    rdev: Number(st.rdev & 0xffff_ffffn),
    atime,
    atimeNsec,
    mtime,
    mtimeNsec,
    ctime,
    ctimeNsec,
  };
}
