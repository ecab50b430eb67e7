/**
 * Round trip through the whole product on the host: `nydus-image create` of a source tree that
 * holds every case a directory can hold (rich-tree.ts), served by nydusd through /dev/fuse, read
 * back with plain file system calls. Types, permission bits, owners, sizes, nanosecond mtimes,
 * nlink and hardlink groups, rdev, symlink targets, xattrs and the sha256 of every file must
 * equal the source — for RAFS v5 and v6, every compressor, both digesters, blobcache and
 * dummycache.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import type { BuildOptions } from '../../src/rafs/builder/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { startDaemon } from '../helpers/daemon.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import type { TreeSnapshot } from '../helpers/tree.js';
import { diffTrees, snapshotDir } from '../helpers/tree.js';

const kChunk = 0x10000;
const kSkip = process.getuid?.() === 0 ? false : 'FUSE mounts and the rich tree need root';
const work = mkdtempSync(join(tmpdir(), 'nydusd-roundtrip-'));
const src = join(work, 'src');
let want: TreeSnapshot;

before(() => {
  if (kSkip) return;
  makeRichTree(src, { chunkSize: kChunk, manyEntries: 1500, depth: 60 });
  want = snapshotDir(src);
  // The daemon shows the root directory as 0755, as upstream does.
  const root = want['/'];
  if (root) root.perm = (root.perm & ~0o777) | 0o755;
});
after(() => rmSync(work, { recursive: true, force: true }));

interface Variant {
  fsVersion: 5 | 6;
  compressor: BuildOptions['compressor'];
  digester: BuildOptions['digester'];
  cache: 'blobcache' | 'dummycache';
}

const kVariants: Variant[] = [];
for (const fsVersion of [5, 6] as const) {
  for (const [compressor, digester] of [['none', 'sha256'], ['lz4_block', 'blake3'], ['zstd', 'blake3'], ['zstd', 'sha256']] as const) {
    kVariants.push({ fsVersion, compressor, digester, cache: 'blobcache' });
  }
  kVariants.push({ fsVersion, compressor: 'zstd', digester: 'blake3', cache: 'dummycache' });
}

for (const v of kVariants) {
  test(`v${v.fsVersion} ${v.compressor}/${v.digester}, ${v.cache}: the mounted image equals its source`, { skip: kSkip, timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(work, 'case-'));
    const blobs = join(dir, 'blobs');
    const mnt = join(dir, 'mnt');
    mkdirSync(blobs);
    mkdirSync(mnt);
    const boot = join(dir, 'image.boot');
    await createImage({ ...defaultBuildOptions(src), fsVersion: v.fsVersion, compressor: v.compressor, digester: v.digester, chunkSize: kChunk, blobDir: blobs, bootstrapPath: boot });
    const cfg = join(dir, 'config.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        device: {
          backend: { type: 'localfs', config: { dir: blobs } },
          cache: v.cache === 'blobcache' ? { type: 'blobcache', config: { work_dir: join(dir, 'cache') } } : { type: 'dummycache' },
        },
        // Validation exercises the digest path on every chunk fetched.
        digest_validate: true,
        enable_xattr: true,
      }),
    );
    const d = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnt]);
    try {
      assert.deepEqual(diffTrees(want, snapshotDir(mnt), { ignoreRootMtime: true }), []);
    } finally {
      assert.equal(await d.stop(), 0, d.log());
    }
    assert.doesNotMatch(d.log(), / ERROR /);
    rmSync(dir, { recursive: true, force: true });
  });
}

// The native session answers a second OPEN of a file itself (its reply cache) with a handle the
// filesystem never saw. READs on that handle that miss the cache must still be filled: the
// filesystem finds the file by node instead of by handle.
test('a reopened file reads through the session\'s own handle, cold chunks filled on demand', { skip: kSkip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(work, 'reopen-'));
  const tree = join(dir, 'src');
  const blobs = join(dir, 'blobs');
  const mnt = join(dir, 'mnt');
  for (const d of [tree, blobs, mnt]) mkdirSync(d);
  const data = Buffer.alloc(2 << 20);
  for (let i = 0, x = 12345; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  writeFileSync(join(tree, 'big'), data);
  const boot = join(dir, 'image.boot');
  await createImage({ ...defaultBuildOptions(tree), chunkSize: kChunk, blobDir: blobs, bootstrapPath: boot });
  const cfg = join(dir, 'config.json');
  // amplify_io 0: fetches stay near what was asked for, so the second handle meets missing chunks.
  writeFileSync(cfg, JSON.stringify({
    device: { backend: { type: 'localfs', config: { dir: blobs } }, cache: { type: 'blobcache', config: { work_dir: join(dir, 'cache') } } },
    amplify_io: 0,
  }));
  const d = await startDaemon(['--config', cfg, '--bootstrap', boot, '--mountpoint', mnt]);
  let whole: Buffer;
  try {
    const fd = openSync(join(mnt, 'big'), 'r');
    try {
      const head = Buffer.alloc(4096);
      assert.equal(readSync(fd, head, 0, 4096, 0), 4096);
      assert.deepEqual(head, data.subarray(0, 4096));
    } finally {
      closeSync(fd);
    }
    whole = readFileSync(join(mnt, 'big'));
  } finally {
    assert.equal(await d.stop(), 0, d.log());
  }
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(whole), sha(data));
  const m = /(\d+) read misses filled, (\d+) READs through JavaScript, (\d+) OPENs answered natively/.exec(d.log());
  assert.ok(m, d.log());
  assert.ok(Number(m[3]) >= 1, `the second open was not answered natively:\n${d.log()}`);
  assert.ok(Number(m[1]) >= 2, `expected misses on both handles:\n${d.log()}`);
  assert.doesNotMatch(d.log(), / ERROR /);
  rmSync(dir, { recursive: true, force: true });
});
