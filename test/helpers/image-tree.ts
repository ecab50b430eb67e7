/**
 * The tree an image should show through the daemon, computed with the RAFS reader alone (no
 * storage, no FUSE), in `treedump` form, with the daemon's presentation rules applied (root
 * 0755, implicit owner = the daemon's euid/egid). Tests compare it with `treedump` of a mount.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';

import type { TreeEntry } from '../../qemu/tools.js';
import { BlobFile, openBootstrap } from '../../src/rafs/index.js';
import type { BlobSource } from '../../src/rafs/index.js';
import { readFileBytes } from './rafs-read.js';

const kTypes: Record<number, TreeEntry['type']> = {
  0o100000: 'file',
  0o040000: 'dir',
  0o120000: 'symlink',
  0o020000: 'char',
  0o060000: 'block',
  0o010000: 'fifo',
  0o140000: 'socket',
};

/** Byte-string path as treedump prints it (each byte one char, latin1). */
function latin1(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

export function imageTree(bootstrap: string, blobDir: string, opts: { uid?: number; gid?: number } = {}): TreeEntry[] {
  const img = openBootstrap(bootstrap, { blobDir });
  const files = new Map<number, BlobSource>();
  const blob = (i: number): BlobSource => {
    let f = files.get(i);
    if (!f) {
      f = new BlobFile(join(blobDir, img.blobs[i]?.blobId ?? ''));
      files.set(i, f);
    }
    return f;
  };
  const out: TreeEntry[] = [];
  try {
    img.walk((path, ref, a) => {
      const type = kTypes[a.mode & 0o170000] ?? 'unknown';
      let mode = a.mode & 0o7777;
      if (path === '/') mode = (mode & ~0o777) | 0o755;
      const e: TreeEntry = {
        path: latin1(path),
        type,
        mode,
        uid: a.implicitOwner ? (opts.uid ?? 0) : a.uid,
        gid: a.implicitOwner ? (opts.gid ?? 0) : a.gid,
        size: a.size,
        nlink: a.nlink,
        // No mtime in the image (compact v6 inodes, some roots): the daemon shows its start time.
        mtime: a.mtimeSec === 0 && a.mtimeNsec === 0 ? kDaemonStartTime : a.mtimeSec,
        mtime_nsec: a.mtimeNsec,
        ino: 0,
        xattrs: {},
      };
      if (type === 'char' || type === 'block') {
        e.rdev_major = (a.rdev >>> 8) & 0xfff;
        e.rdev_minor = (a.rdev & 0xff) | ((a.rdev >>> 12) & 0xfff00);
      }
      if (type === 'symlink') e.target = img.readLink(ref).toString('latin1');
      if (type === 'file') e.sha256 = createHash('sha256').update(readFileBytes(img, ref, blob)).digest('hex');
      for (const name of img.listXattrs(ref)) {
        e.xattrs[name.toString('latin1')] = img.getXattr(ref, name)?.toString('hex') ?? '';
      }
      out.push(e);
    });
  } finally {
    img.close();
  }
  return out.sort((x, y) => Buffer.compare(Buffer.from(x.path, 'latin1'), Buffer.from(y.path, 'latin1')));
}

/** Marks an mtime the daemon fills with its own start time. */
export const kDaemonStartTime = -1;

/**
 * Drops fields that legitimately differ between two views (inode numbers). With `expected`,
 * an mtime the image leaves to the daemon (kDaemonStartTime there) is accepted when it is a
 * plausible start time (at or after `since`, whole seconds).
 */
export function comparable(tree: readonly TreeEntry[], expected?: readonly TreeEntry[], since = 0): unknown[] {
  const startTimePaths = new Set((expected ?? []).filter((e) => e.mtime === kDaemonStartTime).map((e) => e.path));
  return tree.map(({ ino: _ino, ...rest }) => {
    if (startTimePaths.has(rest.path) && rest.mtime_nsec === 0 && rest.mtime >= Math.floor(since / 1000)) {
      return { ...rest, mtime: kDaemonStartTime };
    }
    return rest;
  });
}
