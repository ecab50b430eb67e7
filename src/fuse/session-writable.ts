/**
 * The mutating requests of writable nodes (FuseSession.setWritable), on the JavaScript side: the
 * handler methods they call and the decoding of their arguments. The native session decoded and
 * checked them (native/core/fuse/session_writable.cc) into the upcall's bytes: `count` f64
 * numbers, then the first string, the second string and the data (lengths in the record).
 */
import type { FuseFilesystem, FuseRequestContext, FuseSetattr } from './types.js';
import { kFuseOp } from './types.js';

/** Handler methods of the mutating opcodes (RENAME and RENAME2 share one). */
export const kWritableMethods: readonly (readonly [keyof FuseFilesystem, number])[] = [
  ['setattr', kFuseOp.SETATTR], ['mknod', kFuseOp.MKNOD], ['mkdir', kFuseOp.MKDIR],
  ['symlink', kFuseOp.SYMLINK], ['unlink', kFuseOp.UNLINK], ['rmdir', kFuseOp.RMDIR],
  ['rename', kFuseOp.RENAME], ['rename', kFuseOp.RENAME2], ['link', kFuseOp.LINK],
  ['create', kFuseOp.CREATE], ['write', kFuseOp.WRITE], ['setxattr', kFuseOp.SETXATTR],
  ['removexattr', kFuseOp.REMOVEXATTR], ['fallocate', kFuseOp.FALLOCATE],
];

const kWritableOps = new Set(kWritableMethods.map(([, op]) => op));

export function isWritableOp(op: number): boolean {
  return kWritableOps.has(op);
}

/** Ops whose reply is an entry (as LOOKUP's). */
export function isEntryOp(op: number): boolean {
  return op === kFuseOp.LOOKUP || op === kFuseOp.MKNOD || op === kFuseOp.MKDIR || op === kFuseOp.SYMLINK || op === kFuseOp.LINK;
}

/** The decoded arguments of one mutating request (copies: the arena is reused). */
export interface WritableArgs {
  nums: number[];
  s1: Buffer;
  s2: Buffer;
  data: Buffer;
}

/** Reads the arguments of a record whose counts are a0..a3 and bytes start at `off`. */
export function readWritableArgs(bytes: Buffer, off: number, counts: readonly [number, number, number, number]): WritableArgs {
  const [n, l1, l2, ld] = counts;
  const nums: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) nums[i] = bytes.readDoubleLE(off + i * 8);
  let at = off + n * 8;
  const take = (len: number): Buffer => {
    const b = Buffer.from(bytes.subarray(at, at + len));
    at += len;
    return b;
  };
  const s1 = take(l1);
  const s2 = take(l2);
  return { nums, s1, s2, data: take(ld) };
}

// SETATTR valid bits (linux/fuse.h FATTR_*).
const kFattrMode = 1 << 0;
const kFattrUid = 1 << 1;
const kFattrGid = 1 << 2;
const kFattrSize = 1 << 3;
const kFattrAtime = 1 << 4;
const kFattrMtime = 1 << 5;
const kFattrFh = 1 << 6;
const kFattrAtimeNow = 1 << 7;
const kFattrMtimeNow = 1 << 8;

export function decodeSetattr(n: readonly number[]): FuseSetattr {
  const [valid = 0, fh = 0, size = 0, atime = 0, atimeNsec = 0, mtime = 0, mtimeNsec = 0, mode = 0, uid = 0, gid = 0] = n;
  const set: FuseSetattr = {};
  if (valid & kFattrMode) set.mode = mode;
  if (valid & kFattrUid) set.uid = uid;
  if (valid & kFattrGid) set.gid = gid;
  if (valid & kFattrSize) set.size = size;
  if (valid & kFattrFh) set.fh = fh;
  if (valid & kFattrAtimeNow) set.atime = 'now';
  else if (valid & kFattrAtime) set.atime = { sec: atime, nsec: atimeNsec };
  if (valid & kFattrMtimeNow) set.mtime = 'now';
  else if (valid & kFattrMtime) set.mtime = { sec: mtime, nsec: mtimeNsec };
  return set;
}

/** Calls the handler method of mutating request `op`; undefined when it has none. */
export function callWritable(h: FuseFilesystem, ctx: FuseRequestContext, op: number, a: WritableArgs): unknown {
  const id = ctx.nodeid;
  const [n0 = 0, n1 = 0, n2 = 0, n3 = 0] = a.nums;
  switch (op) {
    case kFuseOp.SETATTR: return h.setattr?.(ctx, id, decodeSetattr(a.nums));
    case kFuseOp.MKNOD: return h.mknod?.(ctx, id, a.s1, n0, n1, n2);
    case kFuseOp.MKDIR: return h.mkdir?.(ctx, id, a.s1, n0, n1);
    case kFuseOp.SYMLINK: return h.symlink?.(ctx, id, a.s1, a.s2);
    case kFuseOp.UNLINK: return h.unlink?.(ctx, id, a.s1);
    case kFuseOp.RMDIR: return h.rmdir?.(ctx, id, a.s1);
    case kFuseOp.RENAME:
    case kFuseOp.RENAME2: return h.rename?.(ctx, id, a.s1, n0, a.s2, n1);
    case kFuseOp.LINK: return h.link?.(ctx, n0, id, a.s1);
    case kFuseOp.CREATE: return h.create?.(ctx, id, a.s1, n0, n1, n2);
    case kFuseOp.WRITE: return h.write?.(ctx, id, n0, n1, a.data, n3);
    case kFuseOp.SETXATTR: return h.setxattr?.(ctx, id, a.s1, a.data, n1);
    case kFuseOp.REMOVEXATTR: return h.removexattr?.(ctx, id, a.s1);
    case kFuseOp.FALLOCATE: return h.fallocate?.(ctx, id, n0, n1, n2, n3);
    default: return undefined;
  }
}
