/**
 * The writable overlay (`--writable`, overlay.upper_dir + work_dir) against the kernel's
 * overlayfs as the peer. One workload — create, write, truncate, append, mkdir, renames, unlink
 * of lower and upper files, rmdir of an upper and a lower directory, a directory made where a
 * lower one was removed (opaque), symlink, hard link, chmod/chown/utimes of lower files (copy-up)
 * and setxattr — runs on our FUSE mount (the image's RAFS as the lower layer) and on a kernel
 * overlayfs mount of the image's source tree. Both must give the same merged view (names, types,
 * modes, owners, sizes, contents, link targets, hard-link groups, xattrs) and the same upper
 * directory (whiteouts and opaque markers included); after restarting our daemon, the same view
 * and inode numbers again. A second workload — writes, truncates and chowns of suid/sgid files
 * by an unprivileged and a privileged caller, fallocate (extend, punch a hole) of a lower and a
 * new file, RENAME_EXCHANGE of upper and lower files and of a directory and a file (EXDEV for a
 * lower directory), an upper directory moved into a merged one — is compared the same way. FORGET keeps the daemon's node table bounded: a `find`
 * over a big tree grows it, drop_caches shrinks it again (the nydusd_fs_nodes metric), and the
 * tree and its inode numbers stay. Bad requests get Linux's errno and the daemon keeps serving.
 * A QEMU guest makes the same changes over vhost-user virtio-fs (one boot).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { guestAvailable, runGuest } from '../../qemu/guest.js';
import { setXattr } from '../../src/native/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { api } from '../helpers/api.js';
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
  // For the suid workload: [name, mode] (others may write each).
  for (const [name, mode] of kSuidFiles) {
    put(root, `suid/${name}`, 'suid\n');
    chmodSync(join(root, 'suid', name), mode);
  }
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

const kSuidFiles: [string, number][] = [
  ['w', 0o4777], // written by nobody: suid cleared
  ['t', 0o4777], // truncated by nobody: cleared
  ['g', 0o2777], // written by nobody: sgid cleared (group may execute)
  ['k', 0o2766], // no group execute, written by nobody (not in its group): cleared too (Linux 6.1.y+)
  ['r', 0o4777], // written by root (CAP_FSETID): kept
  ['c', 0o4755], // chown by root: cleared
];

/** renameat2(RENAME_EXCHANGE) of $1 and $2; the exit status is 0 or the errno. */
const kExchange = `perl -e 'exit(syscall(316, -100, $ARGV[0], -100, $ARGV[1], 2) == 0 ? 0 : $!+0)'`;

/**
 * suid/sgid, fallocate, RENAME_EXCHANGE and a directory moved into a merged one, for the host's
 * sh; $1 is the merged directory.
 */
const kMoreWorkload = `set -e
cd "$1/suid"
echo new > u
chmod 4777 u
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x >> w; truncate -s 1 t; echo x >> g; echo x >> k; echo x >> u'
echo x >> r
chown 1:1 c
cd "$1"
fallocate -l 70000 falloc.bin
fallocate -o 0 -l 100000 keep.txt
fallocate -p -o 2 -l 4 keep.txt
mkdir -p np/up
echo u > np/up/f
rm -r deep/a
mv np/up deep/a
echo one > x1
${kExchange} x1 modify.txt
mkdir ud
echo in > ud/in
${kExchange} ud merged/l2
${kExchange} merged keep.txt || test $? -eq 18
${kExchange} x1 nothing-here || test $? -eq 2
`;

function runMoreWorkload(dir: string): void {
  execFileSync('sh', ['-c', kMoreWorkload, 'sh', dir]);
}

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
let kernelMore: KernelResult;

function kernelRun(name: string, run: (dir: string) => void): KernelResult {
  const dir = join(work, name);
  const upper = join(dir, 'upper');
  const wd = join(dir, 'work');
  const mnt = join(dir, 'mnt');
  for (const d of [dir, upper, wd, mnt]) mkdirSync(d);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${src},upperdir=${upper},workdir=${wd}`, mnt]);
  try {
    run(mnt);
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
  // The unprivileged caller of the suid workload walks down to the mount.
  chmodSync(work, 0o755);
  kernel = kernelRun('kernel', runWorkload);
  kernelMore = kernelRun('kernel-suid', runMoreWorkload);
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

test('suid/sgid clearing, fallocate, RENAME_EXCHANGE and a directory moved into a merged one give the kernel overlayfs view and upper directory', { skip: kSkip, timeout: 60_000 }, async () => {
  const { upper, wd, mnt } = dirs('suid');
  const d = await startDaemon(['--config', config('suid', upper, wd), '--bootstrap', boot, '--mountpoint', mnt, '--writable']);
  try {
    runMoreWorkload(mnt);
    assert.deepEqual(diffTrees(kernelMore.view, comparable(snapshotDir(mnt))), []);
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  assert.doesNotMatch(d.log(), / ERROR /, d.log());
  const ourUpper = comparable(snapshotDir(upper));
  assert.deepEqual(diffTrees(kernelMore.upper, ourUpper), []);
  // The cases were seen (a peer that cleared or kept everything could not agree with these).
  const perm = (p: string): number | undefined => ourUpper[p]?.perm;
  assert.deepEqual(['w', 't', 'g', 'k', 'r', 'c', 'u'].map((f) => perm(`/suid/${f}`)), [0o777, 0o777, 0o777, 0o766, 0o4777, 0o755, 0o777]);
  assert.equal(ourUpper['/keep.txt']?.size, 100_000);
  assert.equal(readFileSync(join(upper, 'keep.txt')).subarray(0, 8).toString('latin1'), 'lo\0\0\0\0ke');
  assert.equal(ourUpper['/falloc.bin']?.size, 70_000);
  assert.equal(ourUpper['/deep/a']?.xattrs?.['trusted.overlay.opaque'], '79', 'moved into a merged directory: opaque');
  assert.equal(readFileSync(join(upper, 'modify.txt'), 'utf8'), 'one\n');
  assert.equal(readFileSync(join(upper, 'x1'), 'utf8'), 'lower version\n');
  assert.equal(ourUpper['/merged/l2']?.type, 'dir');
  assert.equal(ourUpper['/ud']?.type, 'file');
});

/** The writable overlay's nydusd_fs_nodes gauge on API socket `sock`. */
async function nodeGauge(sock: string): Promise<number> {
  const text = (await api(sock, 'GET', '/metrics')).text;
  const m = /^nydusd_fs_nodes\{[^}]*\} (\d+)$/m.exec(text);
  assert.ok(m, `no nydusd_fs_nodes in:\n${text}`);
  return Number(m[1]);
}

test('FORGET keeps the node table bounded: drop_caches after a find over a big tree shrinks it', { skip: kSkip, timeout: 60_000 }, async () => {
  const { upper, wd, mnt } = dirs('forget');
  const sock = join(work, 'forget-api.sock');
  const d = await startDaemon(['--config', config('forget', upper, wd), '--bootstrap', boot, '--mountpoint', mnt, '--writable', '--apisock', sock]);
  try {
    mkdirSync(join(mnt, 'bulk'));
    for (let i = 0; i < 500; i++) writeFileSync(join(mnt, 'bulk', `f${i}`), String(i));
    for (let i = 0; i < 100; i++) unlinkSync(join(mnt, 'bulk', `f${i}`));
    const paths = ['bulk/f100', 'bulk/f499', 'merged/sub/deep', 'keep.txt', 'bulk'];
    const inos = paths.map((p) => lstatSync(join(mnt, p)).ino);
    execFileSync('find', [mnt, '-ls'], { stdio: 'ignore' });
    const busy = await nodeGauge(sock);
    assert.ok(busy >= 400, `after the find: ${busy} nodes`);
    // The kernel drops its unused dentries and inodes, and FORGETs them.
    execFileSync('sync');
    let now = busy;
    for (let i = 0; i < 50 && now > 20; i++) {
      writeFileSync('/proc/sys/vm/drop_caches', '2');
      await new Promise((r) => setTimeout(r, 100));
      now = await nodeGauge(sock);
    }
    assert.ok(now <= 20, `after drop_caches: ${now} of ${busy} nodes left`);
    // Everything is still there, under the same inode numbers.
    assert.deepEqual(paths.map((p) => lstatSync(join(mnt, p)).ino), inos);
    assert.equal(readdirSync(join(mnt, 'bulk')).length, 400);
    assert.equal(readFileSync(join(mnt, 'bulk', 'f250'), 'utf8'), '250');
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  assert.doesNotMatch(d.log(), / ERROR /, d.log());
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
