/**
 * ACCESS for read-only filesystems (only reached without default_permissions): the kernel's
 * generic_permission over the attributes the filesystem shows, with every write intent answered
 * EROFS once the permission bits allow it (the mount is read-only, not the file's bits).
 */
import type { FuseErrno, FuseRequestContext } from '../fuse/index.js';
import { fuseErrno, kErrno } from '../fuse/index.js';
import { isDirMode } from '../util/mode-bits.js';

export function readOnlyAccess(ctx: FuseRequestContext, attr: { mode: number; uid: number; gid: number }, mask: number): void | FuseErrno {
  const { mode, uid, gid } = attr;
  const want = mask & 7;
  if (want === 0) return;
  if (ctx.uid === 0) {
    // root may read/write anything, and execute what someone may execute (or any directory).
    if ((want & 1) !== 0 && (mode & 0o111) === 0 && !isDirMode(mode)) return fuseErrno(kErrno.EACCES);
    return (want & 2) !== 0 ? fuseErrno(kErrno.EROFS) : undefined;
  }
  const bits = ctx.uid === uid ? (mode >> 6) & 7 : ctx.gid === gid ? (mode >> 3) & 7 : mode & 7;
  if ((bits & want) !== want) return fuseErrno(kErrno.EACCES);
  return (want & 2) !== 0 ? fuseErrno(kErrno.EROFS) : undefined;
}
