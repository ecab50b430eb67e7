/**
 * The writable overlay (`--writable`, overlay.upper_dir + work_dir) against the kernel's
 * overlayfs as the peer. One workload — create, write, truncate, append, mkdir, renames, unlink
 * of lower and upper files, rmdir of an upper and a lower directory, a directory made where a
 * lower one was removed (opaque), symlink, hard link, chmod/chown/utimes of lower files (copy-up)
 * and setxattr — runs on our FUSE mount (the image's RAFS as the lower layer) and on a kernel
 * overlayfs mount of the image's source tree. Both must give the same merged view (names, types,
 * modes, owners, sizes, contents, link targets, hard-link groups, xattrs) and the same upper
 * directory (whiteouts and opaque markers included); after restarting our daemon, the same view
 * and inode numbers again. Bad requests get Linux's errno and the daemon keeps serving. A QEMU
 * guest makes the same changes over vhost-user virtio-fs (one boot).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { setXattr } from '../../src/native/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';
import type { TreeSnapshot } from '../helpers/tree.js';
import { diffTrees, overlayConfig, overlayfsSkip, putFile as put, snapshotDir } from '../helpers/tree.js';

const kSkip = overlayfsSkip();
const work = mkdtempSync(join(tmpdir(), 'nydusd-wovl-'));
const src = join(work, 'src');
const blobs = join(work, 'blobs');
const boot = join(work, 'image.boot');

function makeLower(root: string): void {
  put(root, 'keep.txt', 'lower keep\n');
  put(root, 'modify.txt', 'lower version\n');
  put(root, 'gone.txt', 'removed\n');
  put(root, 'gonedir/a', 'a\n');
  put(root, 'gonedir/sub/b', 'b\n');
  put(root, 'merged/l1', 'l1\n');
  put(root, 'merged/l2', 'l2\n');
  put(root, 'merged/sub/deep', 'deep\n');
  put(root, 'big.bin', Buffer.alloc(300_000, 7));
  put(root, 'deep/a/b/c', 'c\n');
  symlinkSync('keep.txt', join(root, 'link'));
  mkdirSync(join(root, 'emptydir'));
}

/** The workload, for busybox sh or the host's sh; $1 is the merged directory. */
const kWorkload = `set -e
cd "$1"
echo created > created.txt
printf 'appended\\n' >> modify.txt
truncate -s 5 big.bin
dd if=/dev/zero of=zeros.bin bs=1024 count=70 2>/dev/null
mkdir -p newdir/sub
echo inner > newdir/sub/f
mv created.txt newdir/moved.txt
mv newdir newdir2
mv merged/l1 merged/l1-renamed
rm gone.txt
rm newdir2/sub/f
rmdir newdir2/sub
rm -r gonedir
mkdir gonedir
echo again > gonedir/new
rmdir emptydir
ln -s keep.txt newlink
ln keep.txt keep-hardlink
chmod 600 merged/l2
chown 1234:5678 deep/a/b/c
touch -d '2020-02-02 02:02:02' merged/sub/deep
echo tail >> zeros.bin
`;

function runWorkload(dir: string): void {
  execFileSync('sh', ['-c', kWorkload, 'sh', dir]);
  setXattr(Buffer.from(join(dir, 'modify.txt')), Buffer.from('user.note'), Buffer.from('set through the overlay'));
}

/**
 * What both sides must agree on: everything but times, directory link counts (merged
 * directories show 1), overlayfs' own bookkeeping xattrs (origin, impure), and how whiteouts
 * are linked (the kernel makes them hard links of one shared whiteout when it can).
 */
function comparable(snap: TreeSnapshot): TreeSnapshot {
  const out: TreeSnapshot = {};
  for (const [path, n] of Object.entries(snap)) {
    const { mtime: _mtime, nlink, xattrs, link, ...rest } = n;
    const whiteout = n.type === 'chr' && n.rdev === 0;
    const keep = Object.fromEntries(Object.entries(xattrs ?? {}).filter(([k]) => !k.startsWith('trusted.overlay.') || k === 'trusted.overlay.opaque'));
    out[path] = {
      ...rest,
      mtime: '',
      nlink: n.type === 'dir' || whiteout ? 0 : nlink,
      ...(link === undefined || whiteout ? {} : { link }),
      ...(Object.keys(keep).length > 0 ? { xattrs: keep } : {}),
    };
  }
  return out;
}

interface KernelResult {
  view: TreeSnapshot;
  upper: TreeSnapshot;
}

let kernel: KernelResult;

function kernelRun(): KernelResult {
  const dir = join(work, 'kernel');
  const upper = join(dir, 'upper');
  const wd = join(dir, 'work');
  const mnt = join(dir, 'mnt');
  for (const d of [dir, upper, wd, mnt]) mkdirSync(d);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${src},upperdir=${upper},workdir=${wd}`, mnt]);
  try {
    runWorkload(mnt);
    return { view: comparable(snapshotDir(mnt)), upper: comparable(snapshotDir(upper)) };
  } finally {
    execFileSync('umount', [mnt]);
  }
}

function config(name: string, upper: string, workDir: string): string {
  return overlayConfig(work, name, blobs, { upper_dir: upper, work_dir: workDir });
}

function dirs(name: string): { upper: string; wd: string; mnt: string } {
  const base = join(work, name);
  const r = { upper: join(base, 'upper'), wd: join(base, 'work'), mnt: join(base, 'mnt') };
  for (const d of [base, r.upper, r.wd, r.mnt]) mkdirSync(d);
  return r;
}

const kInoPaths = ['keep.txt', 'keep-hardlink', 'merged', 'merged/l2', 'newdir2/moved.txt', 'gonedir', 'merged/sub/deep'];

before(async () => {
  if (kSkip) return;
  makeLower(src);
  mkdirSync(blobs);
  await createImage({ ...defaultBuildOptions(src), blobDir: blobs, bootstrapPath: boot });
  kernel = kernelRun();
});
after(() => rmSync(work, { recursive: true, force: true }));

test('the workload on --writable gives the kernel overlayfs view and upper directory, also after a restart', { skip: kSkip, timeout: 120_000 }, async () => {
  const { upper, wd, mnt } = dirs('fuse');
  const cfg = config('fuse', upper, wd);
  const d = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnt, '--writable']);
  let inos: number[];
  try {
    runWorkload(mnt);
    assert.deepEqual(diffTrees(kernel.view, comparable(snapshotDir(mnt))), []);
    inos = kInoPaths.map((p) => lstatSync(join(mnt, p)).ino);
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  assert.doesNotMatch(d.log(), / ERROR /, d.log());
  const ourUpper = comparable(snapshotDir(upper));
  assert.deepEqual(diffTrees(kernel.upper, ourUpper), []);
  // The comparison saw the cases (a peer that did nothing could not agree with these).
  assert.equal(ourUpper['/gone.txt']?.type, 'chr', 'whiteout of a lower file');
  assert.equal(ourUpper['/merged/l1']?.type, 'chr', 'whiteout left by a rename');
  assert.equal(ourUpper['/gonedir']?.xattrs?.['trusted.overlay.opaque'], '79', 'opaque directory');
  assert.equal(ourUpper['/keep-hardlink']?.link, '/keep-hardlink');
  assert.equal(ourUpper['/merged/l2']?.perm, 0o600);
  assert.equal(readFileSync(join(upper, 'modify.txt'), 'utf8'), 'lower version\nappended\n');
  assert.deepEqual(readdirSync(wd), [], 'copy-ups leave nothing in the work directory');

  const again = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnt, '--writable']);
  try {
    assert.deepEqual(diffTrees(kernel.view, comparable(snapshotDir(mnt))), []);
    assert.deepEqual(kInoPaths.map((p) => lstatSync(join(mnt, p)).ino), inos, 'inode numbers survive a restart');
  } finally {
    assert.equal(await again.stop(), 0, again.log());
  }
});

function errnoOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
  return 'no error';
}

test('bad requests get the errno Linux gives, and the daemon keeps serving', { skip: kSkip, timeout: 60_000 }, async () => {
  const { upper, wd, mnt } = dirs('errors');
  const d = await startDaemon(['--config', config('errors', upper, wd), '--bootstrap', boot, '--mountpoint', mnt, '--writable']);
  try {
    assert.equal(errnoOf(() => mkdirSync(join(mnt, 'merged'))), 'EEXIST');
    assert.equal(errnoOf(() => symlinkSync('x', join(mnt, 'keep.txt'))), 'EEXIST');
    assert.equal(errnoOf(() => rmdirSync(join(mnt, 'merged'))), 'ENOTEMPTY');
    assert.equal(errnoOf(() => unlinkSync(join(mnt, 'no-such'))), 'ENOENT');
    assert.equal(errnoOf(() => rmdirSync(join(mnt, 'keep.txt'))), 'ENOTDIR');
    assert.equal(errnoOf(() => unlinkSync(join(mnt, 'merged'))), 'EISDIR');
    // A lower directory cannot move (overlayfs without redirect_dir): mv then copies.
    assert.equal(errnoOf(() => renameSync(join(mnt, 'merged'), join(mnt, 'merged2'))), 'EXDEV');
    assert.equal(errnoOf(() => writeFileSync(join(mnt, 'deep', 'x'.repeat(256)), '')), 'ENAMETOOLONG');
    // Nothing of that changed the tree, and the daemon still answers.
    assert.equal(readFileSync(join(mnt, 'keep.txt'), 'utf8'), 'lower keep\n');
    assert.equal(lstatSync(join(mnt, 'merged')).isDirectory(), true);
    writeFileSync(join(mnt, 'merged', 'after'), 'ok');
    assert.equal(readFileSync(join(mnt, 'merged', 'after'), 'utf8'), 'ok');
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  assert.doesNotMatch(d.log(), / ERROR /, d.log());
});

test('--writable without overlay.work_dir is refused, naming it', { skip: kSkip, timeout: 30_000 }, async () => {
  const { upper, mnt } = dirs('nowork');
  await assert.rejects(startDaemon(['--config', config('nowork', upper, ''), '--bootstrap', boot, '--mountpoint', mnt, '--writable']), /overlay\.work_dir/);
});

test('a QEMU guest makes the same changes over vhost-user virtio-fs', { skip: kSkip || guestAvailable(), timeout: 300_000 }, async () => {
  const { upper, wd } = dirs('guest');
  const socket = join(work, 'guest.sock');
  const d = await startDaemon(['virtiofs', '--sock', socket, '--config', config('guest', upper, wd), '--bootstrap', boot, '--writable']);
  try {
    const r = await runGuest({
      script: `set -e\nmount -t virtiofs nydus /mnt\nsh /workload.sh /mnt\ncat /mnt/modify.txt\nls /mnt/gonedir\numount /mnt`,
      virtiofs: [{ socket, tag: 'nydus' }],
      files: { '/workload.sh': Buffer.from(kWorkload) },
      timeoutMs: 240_000,
    });
    assert.equal(r.exitCode, 0, `${r.output.slice(-2000)}\n${r.consoleLog.slice(-2000)}\n${d.log()}`);
    assert.match(r.output, /lower version\nappended\n/);
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  // The guest's changes are in the upper directory, as the kernel's overlayfs makes them (the
  // xattr step of the host workload is not in the guest's).
  const want = structuredClone(kernel.upper);
  const mod = want['/modify.txt'];
  if (mod) delete mod.xattrs;
  assert.deepEqual(diffTrees(want, comparable(snapshotDir(upper))), []);
});
