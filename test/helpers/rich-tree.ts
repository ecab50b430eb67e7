/**
 * Builds a source directory holding every kind of thing a directory can hold, for image
 * round-trip tests: empty/small/multi-chunk/duplicate/sparse files, setuid/setgid/sticky bits,
 * large uids/gids, hardlinks (to a file, a symlink and a fifo), relative/absolute/dangling/long
 * symlinks, character and block devices, a fifo, a socket, 255-byte and non-UTF-8 names, a
 * directory with thousands of entries, deep nesting, xattrs in every RAFS namespace (binary
 * values, POSIX ACLs) and mtimes with nanoseconds (including before 1970 and after 2038).
 *
 * Owner, device and trusted.* cases need root; without it they are left out (`report.skipped`).
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  linkSync,
  lchownSync,
  mkdirSync,
  openSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

import { setXattr } from '../../src/native/index.js';

export interface RichTreeOptions {
  /** Chunk size the image will use: file sizes are chosen around it. */
  chunkSize: number;
  /** Entries in the large directory (default 2000). */
  manyEntries?: number;
  /** Nesting depth of the deep directory chain (default 120). */
  depth?: number;
  /** Give one file a pre-1970 (negative) mtime (default true). */
  preEpochMtime?: boolean;
}

export interface RichTreeReport {
  skipped: string[];
}

/** Deterministic pseudo-random bytes (xorshift), half of them compressible. */
export function patternBytes(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = (i >> 12) % 2 === 0 ? (x >>> 24) & 0xff : (i >> 6) & 0xff;
  }
  return b;
}

/** A POSIX ACL xattr value (version 2): user/group/other plus a named user and a mask. */
export function aclValue(namedUid: number): Buffer {
  const entries: [number, number, number][] = [
    [0x01, 6, 0xffffffff], // ACL_USER_OBJ
    [0x02, 4, namedUid], // ACL_USER
    [0x04, 4, 0xffffffff], // ACL_GROUP_OBJ
    [0x10, 6, 0xffffffff], // ACL_MASK
    [0x20, 4, 0xffffffff], // ACL_OTHER
  ];
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return b;
}

function touch(path: string, stamp: string): void {
  execFileSync('touch', ['-h', '-d', `@${stamp}`, path]);
}

export function makeRichTree(root: string, opts: RichTreeOptions): RichTreeReport {
  const cs = opts.chunkSize;
  const isRoot = process.getuid?.() === 0;
  const skipped: string[] = [];
  const p = (...parts: string[]): string => join(root, ...parts);
  mkdirSync(root, { recursive: true });

  // Regular files.
  writeFileSync(p('empty'), '');
  writeFileSync(p('small.txt'), 'hello, rafs\n');
  writeFileSync(p('multi.bin'), patternBytes(cs * 5 + cs / 2 + 123, 1));
  writeFileSync(p('exact-chunk'), patternBytes(cs, 2));
  writeFileSync(p('zeros'), Buffer.alloc(cs * 3));
  writeFileSync(p('dup1'), patternBytes(cs + 777, 3));
  writeFileSync(p('dup2'), patternBytes(cs + 777, 3));
  const sparse = openSync(p('sparse'), 'w');
  writeSync(sparse, patternBytes(1000, 4), 0, 1000, cs * 2 + 7);
  closeSync(sparse);
  truncateSync(p('sparse'), cs * 4 + 100);
  writeFileSync(p('hole-at-end'), 'tail data');
  truncateSync(p('hole-at-end'), cs * 2 + 5);

  // Mode bits.
  writeFileSync(p('exec.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(p('exec.sh'), 0o755);
  writeFileSync(p('setuid'), 'suid');
  chmodSync(p('setuid'), 0o4755);
  writeFileSync(p('setgid'), 'sgid');
  chmodSync(p('setgid'), 0o2750);
  mkdirSync(p('sticky'));
  chmodSync(p('sticky'), 0o1777);
  writeFileSync(p('no-perms'), 'x');
  chmodSync(p('no-perms'), 0);

  // Symlinks.
  mkdirSync(p('symlinks'));
  symlinkSync('../small.txt', p('symlinks', 'relative'));
  symlinkSync('/etc/hostname', p('symlinks', 'absolute'));
  symlinkSync('does/not/exist', p('symlinks', 'dangling'));
  symlinkSync(`${'long/'.repeat(600)}end`, p('symlinks', 'long-inline'));
  symlinkSync('p'.repeat(4095), p('symlinks', 'longest'));

  // Hardlinks: a file with three names, a symlink and a fifo with two.
  mkdirSync(p('links'));
  writeFileSync(p('links', 'a'), patternBytes(cs / 2, 5));
  linkSync(p('links', 'a'), p('links', 'b'));
  linkSync(p('links', 'a'), p('hardlink-elsewhere'));
  linkSync(p('symlinks', 'relative'), p('links', 'symlink-link'));
  execFileSync('mkfifo', [p('fifo')]);
  linkSync(p('fifo'), p('links', 'fifo-link'));

  // Special files.
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('sock')]);
  if (isRoot) {
    mkdirSync(p('dev'));
    execFileSync('mknod', [p('dev', 'null-like'), 'c', '1', '3']);
    execFileSync('mknod', [p('dev', 'disk'), 'b', '8', '1']);
    execFileSync('mknod', [p('dev', 'big-minor'), 'c', '300', '70000']);
    writeFileSync(p('owned'), 'owned');
    chownSync(p('owned'), 1234567, 7654321);
    mkdirSync(p('owned-dir'));
    chownSync(p('owned-dir'), 65534, 65533);
    lchownSync(p('symlinks', 'dangling'), 4000, 4001);
  } else {
    skipped.push('devices', 'owners');
  }

  // Names.
  mkdirSync(p('names'));
  writeFileSync(p('names', 'n'.repeat(255)), '255');
  writeFileSync(Buffer.concat([Buffer.from(p('names')), Buffer.from('/'), Buffer.from([0x66, 0xff, 0xfe, 0x80, 0x2e])]), 'latin');
  writeFileSync(p('names', 'ünïcödé ✓'), 'utf8');
  writeFileSync(p('names', ' leading space'), '');
  writeFileSync(p('names', '-dash'), '');
  writeFileSync(p('names', 'new\nline'), '');
  writeFileSync(p('names', '!bang'), '');

  // A directory spanning several dirent blocks, and a deep chain.
  mkdirSync(p('many'));
  const many = opts.manyEntries ?? 2000;
  for (let i = 0; i < many; i++) writeFileSync(p('many', `entry-${String(i).padStart(5, '0')}${'x'.repeat(i % 40)}`), i % 7 === 0 ? String(i) : '');
  let deep = p('deep');
  for (let i = 0; i < (opts.depth ?? 120); i++) deep = join(deep, 'd');
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'bottom'), 'deep');

  // Extended attributes.
  writeFileSync(p('xattrs'), 'xattrs');
  const x = (path: string, name: string, value: Buffer): void => setXattr(Buffer.from(path), Buffer.from(name), value);
  x(p('xattrs'), 'user.binary', Buffer.from([0, 1, 2, 0xff, 0, 0x80]));
  x(p('xattrs'), 'user.empty', Buffer.alloc(0));
  x(p('xattrs'), 'security.label', Buffer.from('system_u:object_r:etc_t:s0\0'));
  x(p('xattrs'), 'system.posix_acl_access', aclValue(1000));
  mkdirSync(p('xattr-dir'));
  x(p('xattr-dir'), 'system.posix_acl_default', aclValue(1001));
  x(p('xattr-dir'), 'user.big', patternBytes(3000, 6));
  writeFileSync(p('xattr-dir', 'child'), 'c');
  if (isRoot) {
    x(p('xattrs'), 'trusted.overlay.origin', Buffer.from('t'));
  } else {
    skipped.push('trusted xattrs');
  }

  // Explicit mtimes last (creating entries above changed directory mtimes).
  touch(p('small.txt'), '1600000000.123456789');
  touch(p('multi.bin'), opts.preEpochMtime === false ? '123456789.5' : '-123456789.5');
  touch(p('zeros'), '4102444800.999999999');
  touch(p('symlinks', 'dangling'), '1234567890.000000001');
  touch(p('names'), '1500000000.5');
  return { skipped };
}
