/**
 * Attribute changes of the writable overlay on an upper object (overlay-writable.ts), and the
 * clearing of set-user-ID / set-group-ID bits as Linux does it.
 *
 * A change goes through the open handle the kernel named (ftruncate: FATTR_FH), which also
 * works for a file unlinked since, or else through the object's upper path (never following a
 * final symlink: lchown, lutimes; chmod is skipped for symlinks, whose mode Linux ignores).
 *
 * suid/sgid: Linux clears S_ISUID of a regular file written or truncated by a caller without
 * CAP_FSETID, and on every chown; S_ISGID as well when the group may execute, or when the caller
 * is neither privileged nor in the file's group (without group execute the bit marks mandatory
 * locking). With FUSE_HANDLE_KILLPRIV_V2 the guest kernel leaves all of it to the filesystem:
 * FUSE_WRITE_KILL_SUIDGID on a WRITE, FATTR_KILL_SUIDGID on a SETATTR (truncate, chown). Without
 * it the kernel sends a SETATTR of the mode first, but by the older rule (group execute only).
 * The daemon writes as root, so the host keeps the bits: they are cleared here, for a caller
 * the kernel says is unprivileged and for every caller but root (the request carries no
 * capabilities; only its primary group is known, so a caller in the file's group through a
 * supplementary group loses a no-group-execute sgid that Linux would keep).
 */
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { chmod, lchown, lstat, lutimes, truncate } from 'node:fs/promises';

import type { FuseSetattr } from '../fuse/index.js';

/** FUSE_WRITE_KILL_SUIDGID in fuse_write_in.write_flags (linux/fuse.h). */
export const kWriteKillSuidgid = 1 << 2;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o0010;

/** Who asks for a change (the request's fsuid / fsgid). */
export interface Caller {
  uid: number;
  gid: number;
}

/** The mode `st` keeps after a write, truncate or chown by `caller` (see the file comment). */
export function withoutSuidgid(st: { mode: number | bigint; gid: number | bigint }, caller: Caller): number {
  const mode = Number(st.mode);
  if ((mode & S_IFMT) !== S_IFREG) return mode;
  let m = mode & ~S_ISUID;
  const notInGroup = caller.uid !== 0 && caller.gid !== Number(st.gid);
  if ((m & S_ISGID) !== 0 && ((m & S_IXGRP) !== 0 || notInGroup)) m &= ~S_ISGID;
  return m;
}

/** Clears suid/sgid of the open file `f` as a write by `caller` does. Returns false when bits stay. */
export async function killSuidgid(f: FileHandle, caller: Caller): Promise<boolean> {
  const st = await f.stat();
  const want = withoutSuidgid(st, caller);
  if (want !== st.mode) await f.chmod(want & 0o7777);
  return (want & (S_ISUID | S_ISGID)) === 0;
}

/** An upper object, by open handle or by path. */
export class SetattrTarget {
  constructor(private readonly _at: FileHandle | Buffer) {}

  stat(): Promise<BigIntStats> {
    return Buffer.isBuffer(this._at) ? lstat(this._at, { bigint: true }) : this._at.stat({ bigint: true });
  }

  /**
   * Applies `set` for `caller`: size, mode, owner, suid/sgid kill (FATTR_KILL_SUIDGID, or a
   * truncate by anyone but root), then times (`before`'s where unset).
   */
  async apply(set: FuseSetattr, before: BigIntStats, caller: Caller): Promise<void> {
    const at = this._at;
    const path = Buffer.isBuffer(at) ? at : undefined;
    const f = Buffer.isBuffer(at) ? undefined : at;
    if (set.size !== undefined) await (f ? f.truncate(set.size) : truncate(path as Buffer, set.size));
    if (set.mode !== undefined && !before.isSymbolicLink()) await (f ? f.chmod(set.mode & 0o7777) : chmod(path as Buffer, set.mode & 0o7777));
    if (set.uid !== undefined || set.gid !== undefined) await (f ? f.chown(set.uid ?? -1, set.gid ?? -1) : lchown(path as Buffer, set.uid ?? -1, set.gid ?? -1));
    if (set.killSuidgid === true || (set.size !== undefined && caller.uid !== 0)) {
      const st = await this.stat();
      const want = withoutSuidgid(st, caller);
      if (want !== Number(st.mode)) await (f ? f.chmod(want & 0o7777) : chmod(path as Buffer, want & 0o7777));
    }
    if (set.atime !== undefined || set.mtime !== undefined) {
      const now = Date.now() / 1000;
      const t = (v: FuseSetattr['atime'], ns: bigint): number => (v === undefined ? Number(ns) / 1e9 : v === 'now' ? now : v.sec + v.nsec / 1e9);
      const a = t(set.atime, before.atimeNs);
      const m = t(set.mtime, before.mtimeNs);
      await (f ? f.utimes(a, m) : lutimes(path as Buffer, a, m));
    }
  }
}
