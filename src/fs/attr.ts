/**
 * Attributes as the kernel sees them, derived from RAFS inode attributes with upstream nydusd's
 * presentation rules:
 * - without EXPLICIT_UID_GID in the image, every inode belongs to the daemon's euid/egid;
 * - an mtime of 0 (compact v6 inodes, old images) is shown as the daemon's start time;
 * - the root directory's permission bits are shown as 0755 (upstream works around images whose
 *   root is 0750, which would lock other users out of a container rootfs).
 */
import type { FuseAttr } from '../fuse/index.js';
import type { InodeAttr } from '../rafs/index.js';
import { isDirMode } from '../util/mode-bits.js';

export interface AttrPolicy {
  uid: number;
  gid: number;
  startTimeSec: number;
}

export function defaultAttrPolicy(): AttrPolicy {
  return {
    uid: process.geteuid?.() ?? 0,
    gid: process.getegid?.() ?? 0,
    startTimeSec: Math.floor(Date.now() / 1000),
  };
}

export function toFuseAttr(a: InodeAttr, nodeId: number, isRoot: boolean, policy: AttrPolicy): FuseAttr {
  let mode = a.mode;
  if (isRoot && isDirMode(mode)) mode = (mode & ~0o777) | 0o755;
  const noTime = a.mtimeSec === 0 && a.mtimeNsec === 0;
  const sec = noTime ? policy.startTimeSec : a.mtimeSec;
  const nsec = noTime ? 0 : a.mtimeNsec;
  return {
    ino: nodeId,
    mode,
    nlink: a.nlink,
    uid: a.implicitOwner ? policy.uid : a.uid,
    gid: a.implicitOwner ? policy.gid : a.gid,
    size: a.size,
    blocks: a.blocks,
    blksize: 4096,
    rdev: a.rdev,
    atime: sec,
    atimeNsec: nsec,
    mtime: sec,
    mtimeNsec: nsec,
    ctime: sec,
    ctimeNsec: nsec,
  };
}
