// Build → read back with the RAFS reader → the same tree as the source: types, permission bits,
// owners, sizes, nanosecond mtimes, nlink and hardlink groups, rdev, symlink targets, xattrs and
// contents (through the chunk lists and blob data), for v5 and v6, every compressor, both
// digesters, with and without TOC, inline meta, and from a tar of the tree. Every chunk's digest
// must match its data.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { createImage, defaultBuildOptions, type BuildOptions } from '../../src/rafs/builder/index.js';
import { chunkDigest, openBootstrap, type RafsImage } from '../../src/rafs/index.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import { blobReader, diffTrees, readImageFile, snapshotDir, snapshotImage, type TreeSnapshot } from '../helpers/tree.js';

const kChunk = 0x10000;
const work = mkdtempSync(join(tmpdir(), 'builder-roundtrip-'));
const src = join(work, 'src');
let want: TreeSnapshot;

before(() => {
  // Pre-1970 mtimes are covered separately below (the reader does not read them yet).
  makeRichTree(src, { chunkSize: kChunk, preEpochMtime: false });
  want = snapshotDir(src);
});
after(() => rmSync(work, { recursive: true, force: true }));

/** Every chunk of every regular file decodes to data whose digest is the recorded one. */
function verifyChunkDigests(image: RafsImage, blobDir: string): number {
  const read = blobReader(blobDir);
  let checked = 0;
  image.walk((_path, ref, attr) => {
    if ((attr.mode & 0o170000) !== 0o100000) return;
    const data = readImageFile(image, ref, read);
    for (const c of image.chunks(ref)) {
      const piece = data.subarray(c.fileOffset, c.fileOffset + c.uncompressedSize);
      assert.deepEqual(chunkDigest(image.super.digester, piece), c.digest, `${_path} chunk at ${c.fileOffset}`);
      checked++;
    }
  });
  return checked;
}

async function roundTrip(o: Partial<BuildOptions>, source = src, expected = want, minChunks = 11): Promise<void> {
  const dir = mkdtempSync(join(work, 'case-'));
  try {
    const out = join(dir, 'out');
    mkdirSync(out);
    const opts = { ...defaultBuildOptions(source), chunkSize: kChunk, blobDir: out, bootstrapPath: join(out, 'bootstrap'), ...o } as BuildOptions;
    if (opts.blobInlineMeta) delete opts.bootstrapPath;
    const r = await createImage(opts);
    // An inline-meta blob is opened as the bootstrap itself (its file name is its blob id).
    const image = openBootstrap(r.bootstrapPath ?? r.blobPath!, { blobDir: out });
    try {
      assert.equal(image.super.version, opts.fsVersion);
      assert.equal(image.super.compressor, opts.compressor);
      assert.equal(image.super.digester, opts.digester);
      assert.equal(image.super.explicitUidGid, opts.explicitUidGid);
      assert.deepEqual(image.blobs.map((b) => b.blobId), r.blobIds);
      const got = snapshotImage(image, blobReader(out));
      assert.deepEqual(diffTrees(expected, got, { ignoreRootMtime: true }), []);
      assert.ok(verifyChunkDigests(image, out) >= minChunks);
    } finally {
      image.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const fsVersion of [5, 6] as const) {
  for (const compressor of ['none', 'lz4_block', 'zstd'] as const) {
    for (const digester of ['blake3', 'sha256'] as const) {
      test(`round trip v${fsVersion} ${compressor} ${digester}`, { timeout: 120_000 }, () => roundTrip({ fsVersion, compressor, digester }));
    }
  }
}

test('round trip v6 with --features blob-toc (chunk info and digests from the blob meta)', { timeout: 120_000 }, () => roundTrip({ blobToc: true }));
test('round trip v6 inline meta with TOC', { timeout: 120_000 }, () => roundTrip({ blobInlineMeta: true, blobToc: true }));
test('round trip v6 inline meta without TOC', { timeout: 120_000 }, () => roundTrip({ blobInlineMeta: true }));
test('round trip v5 inline meta, aligned chunks', { timeout: 120_000 }, () => roundTrip({ fsVersion: 5, blobInlineMeta: true, alignedChunk: true }));
test('round trip with 4 KiB and 16 MiB chunks', { timeout: 120_000 }, async () => {
  await roundTrip({ chunkSize: 0x1000 });
  await roundTrip({ fsVersion: 5, chunkSize: 0x1000000 });
});

test('round trip --repeatable: owners read as implicit', { timeout: 120_000 }, async () => {
  const expected = structuredClone(want);
  for (const n of Object.values(expected)) {
    n.uid = 0;
    n.gid = 0;
  }
  await roundTrip({ explicitUidGid: false }, src, expected);
});

test('round trip from a POSIX tar of the tree (v5 and v6)', { timeout: 180_000 }, async () => {
  const tar = join(work, 'tree.tar');
  execFileSync('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', src, '-cf', tar, '.'], { stdio: 'ignore' });
  const expected = structuredClone(want);
  delete expected['/sock'];
  for (const p of ['/symlinks/relative', '/links/symlink-link', '/fifo', '/links/fifo-link']) {
    expected[p]!.nlink = 1;
    delete expected[p]!.link;
  }
  await roundTrip({ sourceType: 'tar' }, tar, expected);
  await roundTrip({ sourceType: 'tar', fsVersion: 5, compressor: 'lz4_block', digester: 'sha256' }, tar, expected);
});

test('pre-1970 mtimes survive the round trip', async () => {
  const dir = join(work, 'pre-epoch');
  mkdirSync(dir);
  execFileSync('touch', ['-d', '@-123456789.5', join(dir, '.')]);
  const f = join(dir, 'old');
  execFileSync('sh', ['-c', `echo old > '${f}' && touch -d @-86400.25 '${f}'`]);
  for (const fsVersion of [5, 6] as const) await roundTrip({ fsVersion }, dir, snapshotDir(dir), 1);
});
