/**
 * The read-only overlay view (config `overlay.upper_dir`, no --writable) against the kernel's
 * overlayfs as the peer: the same lower tree (our side: its RAFS image; the kernel: the source
 * directory) and the same upper directory (the kernel gets a `cp -a` copy, since mounting may
 * touch its upper), holding new, replaced and hardlinked files, whiteouts of files, directories
 * and names the lower never had, an opaque directory, a merged directory two levels deep, a
 * directory replaced by a file and the reverse, a FIFO, a device and xattrs. Names, types, modes,
 * owners, sizes, mtimes, nlink, hardlink groups, symlink targets, xattrs and contents must match,
 * for the trusted.overlay.* spelling and for user.overlay.* (kernel option userxattr). Inode
 * numbers must be the same after a restart, and the upper directory untouched. The same view
 * reaches a QEMU guest over vhost-user virtio-fs (dumped in the guest by treedump).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { parseTreeDump, toolBinary } from '../../qemu/tools.js';
import { setXattr } from '../../src/native/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';
import type { TreeSnapshot } from '../helpers/tree.js';
import { diffTrees, overlayConfig, overlayfsSkip, putFile as put, snapshotDir, snapshotFromTreeDump } from '../helpers/tree.js';

const kSkip = overlayfsSkip();
const work = mkdtempSync(join(tmpdir(), 'nydusd-overlay-'));
const src = join(work, 'src');
const blobs = join(work, 'blobs');
const boot = join(work, 'image.boot');

function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0, x = seed; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function makeLower(root: string): void {
  put(root, 'keep.txt', 'lower keep\n');
  put(root, 'modify.txt', 'lower version\n');
  put(root, 'gone.txt', 'whited out\n');
  put(root, 'gonedir/a', 'a\n');
  put(root, 'gonedir/sub/b', 'b\n');
  put(root, 'merged/l1', 'l1\n');
  put(root, 'merged/shared', 'lower shared\n');
  put(root, 'merged/hideme', 'hidden\n');
  put(root, 'merged/sub/deep', 'deep\n');
  put(root, 'merged/lowerdir/x', 'x\n');
  put(root, 'opaque/old1', 'old\n');
  put(root, 'opaque/olddir/x', 'x\n');
  put(root, 'dir2file/x', 'x\n');
  put(root, 'file2dir', 'a file below\n');
  put(root, 'big.bin', pseudoRandom(300_000, 7));
  put(root, 'hl1', 'lower hardlink\n');
  linkSync(join(root, 'hl1'), join(root, 'hl2'));
  put(root, 'deep/a/b/c', 'c\n');
  symlinkSync('keep.txt', join(root, 'link'));
  setXattr(Buffer.from(join(root, 'keep.txt')), Buffer.from('user.lower'), Buffer.from('L'));
}

function makeUpper(root: string, ns: 'trusted' | 'user'): void {
  const whiteout = (rel: string): void => {
    execFileSync('mknod', [join(root, rel), 'c', '0', '0']);
  };
  mkdirSync(root);
  put(root, 'modify.txt', 'upper version, longer\n');
  put(root, 'new.txt', 'new in upper\n');
  whiteout('gone.txt');
  whiteout('gonedir');
  whiteout('ghost');
  put(root, 'merged/u1', 'u1\n');
  put(root, 'merged/shared', 'upper shared\n');
  whiteout('merged/hideme');
  put(root, 'merged/sub/new2', 'new2\n');
  put(root, 'opaque/new1', 'new1\n');
  setXattr(Buffer.from(join(root, 'opaque')), Buffer.from(`${ns}.overlay.opaque`), Buffer.from('y'));
  put(root, 'dir2file', 'now a file\n');
  put(root, 'file2dir/inner', 'inner\n');
  put(root, 'ubig.bin', pseudoRandom(200_000, 9));
  put(root, 'uh1', 'upper hardlink\n');
  linkSync(join(root, 'uh1'), join(root, 'uh2'));
  symlinkSync('merged/u1', join(root, 'newlink'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  execFileSync('mknod', [join(root, 'null'), 'c', '1', '3']);
  setXattr(Buffer.from(join(root, 'new.txt')), Buffer.from('user.note'), Buffer.from('upper'));
  // Directory mtimes are compared: fix them after the last change inside.
  for (const d of ['merged/sub', 'merged', 'opaque', 'file2dir', '.']) execFileSync('touch', ['-h', '-d', '2021-01-01 00:00:00.5', join(root, d)]);
}

/** The kernel's view: overlayfs with the source tree below and a copy of `upper` above. */
function kernelView(name: string, upper: string, ns: 'trusted' | 'user'): TreeSnapshot {
  const dir = join(work, `kernel-${name}`);
  const copy = join(dir, 'upper');
  const wd = join(dir, 'work');
  const mnt = join(dir, 'mnt');
  mkdirSync(dir);
  mkdirSync(wd);
  mkdirSync(mnt);
  execFileSync('cp', ['-a', upper, copy]);
  // cp may leave the opaque marker behind (trusted.* is not always copied): set it again.
  setXattr(Buffer.from(join(copy, 'opaque')), Buffer.from(`${ns}.overlay.opaque`), Buffer.from('y'));
  const opts = `lowerdir=${src},upperdir=${copy},workdir=${wd}${ns === 'user' ? ',userxattr' : ''}`;
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', opts, mnt]);
  try {
    return snapshotDir(mnt);
  } finally {
    execFileSync('umount', [mnt]);
  }
}

function config(name: string, upper: string): string {
  return overlayConfig(work, name, blobs, { upper_dir: upper });
}

/** Our view, and the inode numbers of `paths` in it. */
async function ourView(name: string, upper: string, paths: string[]): Promise<{ snap: TreeSnapshot; inos: number[] }> {
  const mnt = mkdtempSync(join(work, `mnt-${name}-`));
  const d = await startDaemon(['--config', config(name, upper), '--bootstrap', boot, '--mountpoint', mnt]);
  try {
    const snap = snapshotDir(mnt);
    const inos = paths.map((p) => lstatSync(join(mnt, p)).ino);
    // The same path gives the same inode on a second look.
    assert.deepEqual(paths.map((p) => lstatSync(join(mnt, p)).ino), inos);
    return { snap, inos };
  } finally {
    assert.equal(await d.stop(), 0, d.log());
    assert.doesNotMatch(d.log(), / ERROR /, d.log());
  }
}

before(async () => {
  if (kSkip) return;
  makeLower(src);
  mkdirSync(blobs);
  await createImage({ ...defaultBuildOptions(src), blobDir: blobs, bootstrapPath: boot });
});
after(() => rmSync(work, { recursive: true, force: true }));

for (const ns of ['trusted', 'user'] as const) {
  test(`the merged view equals the kernel's overlayfs (${ns}.overlay.opaque)`, { skip: kSkip, timeout: 60_000 }, async () => {
    const upper = join(work, `upper-${ns}`);
    makeUpper(upper, ns);
    const before = snapshotDir(upper);
    const want = kernelView(ns, upper, ns);
    const paths = ['merged', 'merged/u1', 'merged/l1', 'uh1', 'uh2', 'big.bin', 'opaque/new1'];
    const first = await ourView(ns, upper, paths);
    assert.deepEqual(diffTrees(want, first.snap), []);
    // Spot checks that the comparison saw the cases (a broken peer cannot pass them by agreeing).
    assert.equal(first.snap['/gone.txt'], undefined);
    assert.equal(first.snap['/merged/hideme'], undefined);
    assert.equal(first.snap['/opaque/old1'], undefined);
    assert.equal(first.snap['/merged/sub/deep']?.type, 'file');
    assert.equal(first.snap['/dir2file']?.type, 'file');
    assert.equal(first.snap['/file2dir']?.type, 'dir');
    assert.equal(first.snap['/uh2']?.link, '/uh1');
    assert.equal(first.inos[3], first.inos[4], 'upper hardlinks share an inode');
    assert.equal(first.snap['/merged']?.nlink, 1, 'merged directories show nlink 1, as overlayfs');
    if (ns === 'trusted') {
      const again = await ourView(`${ns}-again`, upper, paths);
      assert.deepEqual(again.inos, first.inos, 'inode numbers survive a restart');
      assert.deepEqual(diffTrees(want, again.snap), []);
    }
    assert.deepEqual(diffTrees(before, snapshotDir(upper)), [], 'the upper directory is not changed');
  });
}

test('a missing overlay.upper_dir is refused with exit status 2, naming it', { skip: kSkip, timeout: 30_000 }, async () => {
  const mnt = mkdtempSync(join(work, 'mnt-bad-'));
  const missing = join(work, 'no-such-upper');
  await assert.rejects(startDaemon(['--config', config('bad', missing), '--bootstrap', boot, '--mountpoint', mnt]), (err: Error) => {
    assert.match(err.message, /exited with 2 /);
    assert.match(err.message, new RegExp(`overlay\\.upper_dir ${missing}: ENOENT`));
    return true;
  });
  const file = join(work, 'upper-is-a-file');
  writeFileSync(file, '');
  await assert.rejects(startDaemon(['--config', config('bad2', file), '--bootstrap', boot, '--mountpoint', mnt]), /overlay\.upper_dir .*: not a directory/);
});

test('a QEMU guest sees the same merged view over vhost-user virtio-fs', { skip: kSkip || guestAvailable(), timeout: 240_000 }, async () => {
  const upper = join(work, 'upper-guest');
  makeUpper(upper, 'trusted');
  const want = kernelView('guest', upper, 'trusted');
  const socket = join(work, 'guest.sock');
  const d = await startDaemon(['virtiofs', '--sock', socket, '--config', config('guest', upper), '--bootstrap', boot]);
  try {
    const r = await runGuest({
      script: 'set -e\nmount -t virtiofs nydus /mnt\nchmod +x /treedump\n/treedump /mnt',
      virtiofs: [{ socket, tag: 'nydus' }],
      files: { '/treedump': readFileSync(toolBinary('treedump')) },
      timeoutMs: 180_000,
    });
    assert.equal(r.exitCode, 0, `${r.output.slice(-2000)}\n${r.consoleLog.slice(-2000)}\n${d.log()}`);
    const got = snapshotFromTreeDump(parseTreeDump(r.output));
    assert.deepEqual(diffTrees(want, got), []);
    assert.equal(got['/merged/hideme'], undefined);
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
});
