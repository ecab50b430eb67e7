// RAFS v6 output mounted by the host's Linux kernel (`mount -t erofs -o loop` of the exported
// disk; needs root and erofs): the mounted tree must equal the source — types, permission bits,
// owners, sizes, nanosecond mtimes, nlink and hardlink groups, rdev, symlink targets, xattrs
// (ACLs included) and contents — for every compressor and digester, from a directory and from
// a tar of it, and for the upstream tar fixtures.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { blake3 } from '../../src/native/index.js';
import { createImage, defaultBuildOptions, type BuildOptions } from '../../src/rafs/builder/index.js';
import { exportDisk, loopMountSkip, withLoopMount } from '../helpers/erofs.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import { diffTrees, snapshotDir, type TreeSnapshot } from '../helpers/tree.js';
import { V6Peek } from '../helpers/v6-peek.js';

const kChunk = 0x10000;
const work = mkdtempSync(join(tmpdir(), 'erofs-mount-'));
const src = join(work, 'src');
let want: TreeSnapshot;
const skip = loopMountSkip();

before(() => {
  makeRichTree(src, { chunkSize: kChunk });
  want = snapshotDir(src);
});
after(() => rmSync(work, { recursive: true, force: true }));

async function buildAndMount(o: Partial<BuildOptions>, source = src): Promise<TreeSnapshot> {
  const dir = mkdtempSync(join(work, 'case-'));
  try {
    const out = join(dir, 'out');
    mkdirSync(out);
    const boot = join(out, 'bootstrap');
    await createImage({ ...defaultBuildOptions(source), chunkSize: kChunk, blobDir: out, bootstrapPath: boot, ...o });
    const { disk } = exportDisk(boot, out, dir);
    return await withLoopMount(disk, join(dir, 'mnt'), (mnt) => snapshotDir(mnt));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const variants: Partial<BuildOptions>[] = [];
for (const compressor of ['none', 'lz4_block', 'zstd'] as const) {
  for (const digester of ['blake3', 'sha256'] as const) variants.push({ compressor, digester });
}
variants.push({ blobToc: true }, { chunkSize: 0x1000 }, { chunkSize: 0x100000 });

for (const v of variants) {
  test(`the kernel mounts a v6 image of the source tree (${JSON.stringify(v)})`, { skip, timeout: 300_000 }, async () => {
    const got = await buildAndMount(v);
    assert.deepEqual(diffTrees(want, got, { ignoreRootMtime: true }), []);
  });
}

test('--repeatable images read as root-owned', { skip, timeout: 300_000 }, async () => {
  const got = await buildAndMount({ explicitUidGid: false });
  for (const n of Object.values(got)) assert.deepEqual([n.uid, n.gid], [0, 0]);
  assert.deepEqual(diffTrees(want, got, { ignoreRootMtime: true, ignore: ['uid', 'gid'] }), []);
});

test('the kernel mounts an image built from a POSIX tar of the same tree', { skip, timeout: 300_000 }, async () => {
  const tar = join(work, 'tree.tar');
  execFileSync('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '--acls', '--numeric-owner', '-C', src, '-cf', tar, '.'], { stdio: ['ignore', 'ignore', 'ignore'] });
  const gz = join(work, 'tree.tar.gz');
  execFileSync('sh', ['-c', `gzip -c < '${tar}' > '${gz}'`]);
  const expected: TreeSnapshot = structuredClone(want);
  // tar cannot store sockets; RAFS (like upstream) shares inodes only between regular files, so
  // a hardlinked symlink or fifo becomes independent copies.
  delete expected['/sock'];
  for (const p of ['/symlinks/relative', '/links/symlink-link', '/fifo', '/links/fifo-link']) {
    expected[p]!.nlink = 1;
    delete expected[p]!.link;
  }
  for (const [path, type] of [[tar, 'tar'], [gz, 'targz']] as const) {
    const got = await buildAndMount({ sourceType: type }, path);
    assert.deepEqual(diffTrees(expected, got, { ignoreRootMtime: true }), [], type);
  }
});

test('the upstream tar fixtures build into mountable images', { skip: skip || fixturesSkip(), timeout: 120_000 }, async () => {
  const gnu = await buildAndMount({ sourceType: 'tar' }, fixture('tests/texture/tar/all-entry-type.tar'));
  const file = gnu['/tar/dir1/dir3/hardlink1.txt']!;
  assert.equal(file.size, 15);
  assert.equal(file.nlink, 4);
  for (const p of ['/tar/dir1/dir3/xfile.txt', '/tar/dir1/hardlink2.txt', '/tar/dir2/hardlink3.txt']) assert.equal(gnu[p]!.link, '/tar/dir1/dir3/hardlink1.txt');
  assert.equal(gnu['/tar/dir2/symlink1.txt']!.target, '../dir1/dir3/file1.txt');
  assert.equal(gnu['/tar/dir1']!.mtime, '1665584666.000000000');
  assert.equal(gnu['/tar/dir2/symlink1.txt']!.perm, 0o755);

  const warnings: string[] = [];
  const mac = await buildAndMount({ sourceType: 'tar', onWarning: (m) => warnings.push(m) }, fixture('tests/texture/tar/all-entry-type-macos.tar'));
  const long = Object.keys(mac).find((p) => p.includes('this_is_really_a_very_long_name'))!;
  assert.equal(mac[long]!.size, 10);
  assert.equal(mac['/tar/dir1/hardlink2.txt']!.nlink, 4);
  assert.equal(mac['/tar/dir1/hardlink2.txt']!.mtime, '1665584430.393557573');
  assert.equal(mac['/tar/dir1/._hardlink2.txt']!.size, 149);
  assert.ok(warnings.some((w) => w.includes('"hardlink3"')), 'namespace-less macOS xattrs are reported, not stored');

  const empty = await buildAndMount({ sourceType: 'tar' }, fixture('tests/texture/tar/empty.tar'));
  assert.deepEqual(Object.keys(empty), ['/']);
});

test('the upstream v6 fixture export mounts and its files match their chunk digests', { skip: skip || fixturesSkip(), timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(work, 'fixture-'));
  const boot = fixture('tests/texture/bootstrap/rafs-v6-2.2.boot');
  const { disk } = exportDisk(boot, fixture('tests/texture/blobs'), dir);
  const peek = new V6Peek(readFileSync(boot));
  const digests = new Set<string>();
  for (let o = peek.chunkTableOffset; o < peek.chunkTableOffset + peek.chunkTableSize; o += 80) digests.add(peek.buf.subarray(o, o + 32).toString('hex'));
  const snap = await withLoopMount(disk, join(dir, 'mnt'), (mnt) => {
    // Each file is a single chunk, so BLAKE3 of its contents is a recorded chunk digest.
    for (const f of ['lib.rs', 'sync_io.rs']) assert.ok(digests.has(blake3(readFileSync(join(mnt, f))).toString('hex')), f);
    return snapshotDir(mnt);
  });
  assert.deepEqual(Object.keys(snap).sort(), ['/', '/lib.rs', '/sync_io.rs']);
  assert.equal(snap['/lib.rs']!.mtime, '1676819553.628661334');
  assert.equal(snap['/sync_io.rs']!.size, 13400);
});
