/**
 * `nydusd --shared-dir DIR --mountpoint M` over real /dev/fuse: DIR served read-write by the C++
 * passthrough filesystem inside the FUSE session. A workload through M (create, write, append,
 * rename, hard link, symlink, chmod, truncate, xattrs, mkdir/rmdir, readdir, a rename into the
 * root) must leave exactly the expected host tree, and M must show the same tree as DIR (names,
 * types, modes, sizes, contents, link counts, xattrs). Escape attempts: a symlink to "/" stays a
 * symlink on the host, no-follow operations act on links, and nothing outside DIR changes (the
 * kernel resolves `..` and symlinks itself on a host mount; LOOKUP ".." of the share's root and
 * server-side resolution are covered by native/test/passthrough_escape_test.cc). Needs root and
 * /dev/fuse.
 */
import assert from 'node:assert/strict';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { readXattrs, setXattr } from '../../src/native/index.js';
import type { RunningDaemon } from '../helpers/daemon.js';
import { startDaemon } from '../helpers/daemon.js';
import { diffTrees, snapshotDir } from '../helpers/tree.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : !existsSync('/dev/fuse') ? 'no /dev/fuse' : false;

describe('nydusd --shared-dir over /dev/fuse', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'nydus-pt-fuse-'));
  const share = join(work, 'share');
  const mnt = join(work, 'mnt');
  const outside = join(work, 'outside');
  let d: RunningDaemon | undefined;

  before(async () => {
    mkdirSync(share);
    mkdirSync(mnt);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'not yours\n');
    writeFileSync(join(share, 'pre.txt'), 'made on the host\n');
    d = await startDaemon(['--shared-dir', share, '--mountpoint', mnt, '--log-level', 'info']);
  });
  after(async () => {
    const code = await d?.stop();
    assert.equal(code, 0, d?.log().slice(-3000));
    rmSync(work, { recursive: true, force: true });
  });

  test('a write workload through the mount leaves the expected host tree', () => {
    assert.equal(readFileSync(join(mnt, 'pre.txt'), 'utf8'), 'made on the host\n');
    mkdirSync(join(mnt, 'd'), { mode: 0o750 });
    writeFileSync(join(mnt, 'd', 'a.txt'), 'hello');
    appendFileSync(join(mnt, 'd', 'a.txt'), ' world\n');
    renameSync(join(mnt, 'd', 'a.txt'), join(mnt, 'd', 'b.txt'));
    linkSync(join(mnt, 'd', 'b.txt'), join(mnt, 'hl'));
    symlinkSync('d/b.txt', join(mnt, 'sl'));
    chmodSync(join(mnt, 'd', 'b.txt'), 0o600);
    writeFileSync(join(mnt, 'big.bin'), Buffer.alloc(3 << 20, 7));
    truncateSync(join(mnt, 'big.bin'), 1_000_001);
    setXattr(Buffer.from(join(mnt, 'd', 'b.txt')), Buffer.from('user.note'), Buffer.from('v1'));
    mkdirSync(join(mnt, 'gone'));
    writeFileSync(join(mnt, 'gone', 'x'), 'x');
    unlinkSync(join(mnt, 'gone', 'x'));
    rmdirSync(join(mnt, 'gone'));
    // A rename into the root names the FUSE root node as the new parent.
    writeFileSync(join(mnt, 'd', 'up'), 'moved up\n');
    renameSync(join(mnt, 'd', 'up'), join(mnt, 'up'));

    // The host tree, read directly.
    assert.deepEqual(readdirSync(share).sort(), ['big.bin', 'd', 'hl', 'pre.txt', 'sl', 'up']);
    assert.deepEqual(readdirSync(join(share, 'd')), ['b.txt']);
    assert.equal(readFileSync(join(share, 'd', 'b.txt'), 'utf8'), 'hello world\n');
    assert.equal(statSync(join(share, 'd', 'b.txt')).mode & 0o7777, 0o600);
    assert.equal(statSync(join(share, 'd', 'b.txt')).nlink, 2);
    assert.equal(statSync(join(share, 'hl')).ino, statSync(join(share, 'd', 'b.txt')).ino);
    assert.equal(statSync(join(share, 'd')).mode & 0o777, 0o750 & ~process.umask());
    assert.equal(readlinkSync(join(share, 'sl')), 'd/b.txt');
    assert.equal(statSync(join(share, 'big.bin')).size, 1_000_001);
    assert.equal(readFileSync(join(share, 'up'), 'utf8'), 'moved up\n');
    const x = readXattrs(Buffer.from(join(share, 'd', 'b.txt'))).map(([n, v]) => [n.toString(), v.toString()]);
    assert.deepEqual(x.filter(([n]) => n?.startsWith('user.')), [['user.note', 'v1']]);

    // The mount shows the host tree: names, types, modes, sizes, contents, links, xattrs.
    assert.deepEqual(diffTrees(snapshotDir(share), snapshotDir(mnt)), []);
  });

  test('changes made on the host are seen through the mount', () => {
    writeFileSync(join(share, 'host-new'), 'fresh\n');
    assert.equal(readFileSync(join(mnt, 'host-new'), 'utf8'), 'fresh\n');
    // (A name removed on the host stays in the kernel's dentry cache for the entry timeout, 5 s,
    // as with virtiofsd's cache=auto: not checked here.)
    unlinkSync(join(share, 'host-new'));
  });

  test('errno cases reach the caller as Linux gives them', () => {
    mkdirSync(join(mnt, 'full'));
    writeFileSync(join(mnt, 'full', 'f'), '');
    assert.throws(() => rmdirSync(join(mnt, 'full')), { code: 'ENOTEMPTY' });
    assert.throws(() => mkdirSync(join(mnt, 'full')), { code: 'EEXIST' });
    assert.throws(() => readFileSync(join(mnt, 'missing')), { code: 'ENOENT' });
    assert.throws(() => rmdirSync(join(mnt, 'full', 'f')), { code: 'ENOTDIR' });
    rmSync(join(mnt, 'full'), { recursive: true });
    assert.equal(existsSync(join(share, 'full')), false);
  });

  test('escape attempts never touch anything outside the share', () => {
    const rootBefore = lstatSync('/');
    // A symlink to "/" is stored as a symlink; no-follow operations act on the link itself.
    symlinkSync('/', join(mnt, 'esc'));
    assert.equal(lstatSync(join(share, 'esc')).isSymbolicLink(), true);
    assert.equal(readlinkSync(join(share, 'esc')), '/');
    assert.throws(() => setXattr(Buffer.from(join(mnt, 'esc')), Buffer.from('user.evil'), Buffer.from('1')), { errno: 1 });
    linkSync(join(mnt, 'esc'), join(mnt, 'esc2'));
    assert.equal(lstatSync(join(share, 'esc2')).isSymbolicLink(), true);
    renameSync(join(mnt, 'esc2'), join(mnt, 'd', 'esc3'));
    assert.equal(readlinkSync(join(share, 'd', 'esc3')), '/');
    // A symlink made on the host pointing outside: the server never follows it itself, a
    // no-follow chmod through the mount cannot reach its target, and unlinking removes the link.
    symlinkSync(outside, join(share, 'out'));
    assert.equal(lstatSync(join(mnt, 'out')).isSymbolicLink(), true);
    unlinkSync(join(mnt, 'out'));
    unlinkSync(join(mnt, 'esc'));
    unlinkSync(join(mnt, 'd', 'esc3'));
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'not yours\n');
    assert.deepEqual(readdirSync(outside), ['secret']);
    const rootAfter = lstatSync('/');
    assert.equal(rootAfter.mode, rootBefore.mode);
    assert.equal(rootAfter.uid, rootBefore.uid);
    assert.equal(rootAfter.ctimeMs, rootBefore.ctimeMs);
    assert.deepEqual(diffTrees(snapshotDir(share), snapshotDir(mnt)), []);
  });
});
