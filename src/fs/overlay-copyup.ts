/**
 * Copy-up for the writable overlay (overlay-writable.ts), as overlayfs(5) does it: a lower
 * object about to change is first rebuilt in the upper layer — data, mode, owner, times and
 * xattrs — under a temporary name in the work directory, then renamed into place, so a crash
 * never leaves a half-copied file visible in the upper layer (only a stray temporary in the work
 * directory, removed at the next start). The work directory must be on the upper directory's
 * filesystem (rename(2) cannot cross filesystems).
 */
import { constants as fsc } from 'node:fs';
import { chmod, lchown, lutimes, mkdir, open, readdir, rename, rm, symlink } from 'node:fs/promises';

import type { FuseAttr, FuseFilesystem, FuseRequestContext } from '../fuse/index.js';
import { FuseErrno } from '../fuse/index.js';
import { hostMknod, hostSetXattr } from '../native/index.js';
import { fileType, S_IFDIR, S_IFLNK, S_IFREG } from '../util/mode-bits.js';

const kChunk = 1 << 20;
const kTempPrefix = '.nydus-copyup-';
/**
 * The lower node id a copied-up object came from (decimal). A private overlay xattr: never shown
 * through the overlay; the kernel's overlayfs ignores names of its namespace it does not use.
 */
export const kOriginXattr = Buffer.from('trusted.overlay.nydus.origin');

/** The lower filesystem calls a copy-up needs. */
export type CopyUpLower = Required<Pick<FuseFilesystem, 'getattr' | 'readlink' | 'open' | 'read' | 'release' | 'listxattr' | 'getxattr'>>;

/** Throws the FuseErrno a lower call answered, else returns its value. */
function must<T>(v: T | FuseErrno): T {
  if (v instanceof FuseErrno) throw v;
  return v;
}

export class CopyUp {
  private _next = 0;

  constructor(
    private readonly _lower: CopyUpLower,
    private readonly _workDir: string,
  ) {}

  /** Removes what an interrupted copy-up left in the work directory. */
  async sweep(): Promise<void> {
    for (const name of await readdir(this._workDir)) {
      if (name.startsWith(kTempPrefix)) await rm(`${this._workDir}/${name}`, { recursive: true, force: true });
    }
  }

  /** A fresh temporary path in the work directory. */
  temp(): Buffer {
    return Buffer.from(`${this._workDir}/${kTempPrefix}${process.pid}-${this._next++}`);
  }

  /** Rebuilds lower node `lower` (attributes `attr`) at upper path `dest` (which must not exist). */
  async copy(ctx: FuseRequestContext, lower: number, attr: FuseAttr, dest: Buffer): Promise<void> {
    const tmp = this.temp();
    try {
      await this._make(ctx, lower, attr, tmp);
      await this._xattrs(ctx, lower, tmp);
      // Where the object came from: its node id stays the lower one's, also after a restart.
      hostSetXattr(tmp, kOriginXattr, Buffer.from(String(lower)), 0);
      await lchown(tmp, attr.uid, attr.gid);
      if (fileType(attr.mode) !== S_IFLNK) await chmod(tmp, attr.mode & 0o7777);
      await lutimes(tmp, attr.atime + (attr.atimeNsec ?? 0) / 1e9, attr.mtime + (attr.mtimeNsec ?? 0) / 1e9);
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  private async _make(ctx: FuseRequestContext, lower: number, attr: FuseAttr, tmp: Buffer): Promise<void> {
    switch (fileType(attr.mode)) {
      case S_IFDIR:
        await mkdir(tmp, { mode: 0o700 });
        return;
      case S_IFLNK:
        await symlink(must(await this._lower.readlink(ctx, lower)), tmp);
        return;
      case S_IFREG:
        await this._data(ctx, lower, attr.size, tmp);
        return;
      default:
        hostMknod(tmp, attr.mode, attr.rdev ?? 0);
    }
  }

  private async _data(ctx: FuseRequestContext, lower: number, size: number, tmp: Buffer): Promise<void> {
    const out = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      const fh = must(await this._lower.open(ctx, lower, fsc.O_RDONLY)).fh;
      try {
        for (let off = 0; off < size; ) {
          const data = must(await this._lower.read(ctx, lower, fh, off, Math.min(kChunk, size - off)));
          if (data.length === 0) break;
          await out.write(data, 0, data.length, off);
          off += data.length;
        }
        await out.truncate(size);
      } finally {
        await this._lower.release(ctx, lower, fh, 0);
      }
    } finally {
      await out.close();
    }
  }

  private async _xattrs(ctx: FuseRequestContext, lower: number, tmp: Buffer): Promise<void> {
    const names = await this._lower.listxattr(ctx, lower);
    if (names instanceof FuseErrno) return;  // no xattrs in the image
    for (const n of names) {
      const name = typeof n === 'string' ? Buffer.from(n) : Buffer.from(n);
      const value = await this._lower.getxattr(ctx, lower, name);
      if (value instanceof FuseErrno) continue;
      hostSetXattr(tmp, name, typeof value === 'string' ? Buffer.from(value) : value, 0);
    }
  }
}
