// RAFS v6 output checked by erofs-utils: every compressor (the export decompresses every
// chunk), both digesters; fsck.erofs must accept the disk and extract the source tree.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { blake3 } from '../../src/native/index.js';
import { createImage, defaultBuildOptions, type BuildOptions } from '../../src/rafs/builder/index.js';
import { exportDisk, fsckAvailable, fsckExtract } from '../helpers/erofs.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { makeRichTree } from '../helpers/rich-tree.js';
import { diffTrees, snapshotDir, type TreeSnapshot } from '../helpers/tree.js';
import { V6Peek } from '../helpers/v6-peek.js';

const kChunk = 0x10000;
const work = mkdtempSync(join(tmpdir(), 'erofs-fsck-'));
const src = join(work, 'src');
let want: TreeSnapshot;

before(() => {
  makeRichTree(src, { chunkSize: kChunk });
  want = fsckView(snapshotDir(src));
});
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * What fsck.erofs 1.5 --extract can reproduce: no hardlinks (each name becomes its own file), no
 * xattrs, and setuid/setgid are dropped (it chmods before it chowns).
 */
function fsckView(s: TreeSnapshot): TreeSnapshot {
  const out: TreeSnapshot = {};
  for (const [p, n] of Object.entries(s)) {
    const { xattrs: _x, link: _l, ...rest } = n;
    out[p] = { ...rest, perm: n.perm & 0o1777, nlink: n.type === 'dir' ? n.nlink : 1 };
  }
  return out;
}

const variants: Partial<BuildOptions>[] = [
  { compressor: 'none' },
  { compressor: 'lz4_block' },
  { compressor: 'zstd' },
  { compressor: 'zstd', digester: 'sha256', blobToc: true },
];

for (const v of variants) {
  test(`fsck.erofs accepts and extracts a v6 image (${JSON.stringify(v)})`, { skip: fsckAvailable(), timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(work, 'case-'));
    const out = join(dir, 'out');
    mkdirSync(out);
    const boot = join(out, 'bootstrap');
    await createImage({ ...defaultBuildOptions(src), chunkSize: kChunk, blobDir: out, bootstrapPath: boot, ...v });
    const disk = exportDisk(boot, out, dir);
    const extracted = join(dir, 'extract');
    fsckExtract(disk, extracted);
    assert.deepEqual(diffTrees(want, fsckView(snapshotDir(extracted, { xattrs: false })), { ignoreRootMtime: true }), []);
    rmSync(dir, { recursive: true, force: true });
  });
}

test('fsck.erofs accepts the export of the upstream v6 fixture', { skip: fsckAvailable() || fixturesSkip(), timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(work, 'fixture-'));
  const disk = exportDisk(fixture('tests/texture/bootstrap/rafs-v6-2.2.boot'), fixture('tests/texture/blobs'), dir);
  const extracted = join(dir, 'extract');
  fsckExtract(disk, extracted);
  const s = snapshotDir(extracted, { xattrs: false });
  assert.deepEqual(Object.keys(s).sort(), ['/', '/lib.rs', '/sync_io.rs']);
  assert.equal(s['/lib.rs']!.size, 16931);
  assert.equal(s['/sync_io.rs']!.size, 13400);
  // Each file is one chunk: its BLAKE3 must be one of the chunk digests the bootstrap records.
  const peek = new V6Peek(readFileSync(fixture('tests/texture/bootstrap/rafs-v6-2.2.boot')));
  const digests = new Set<string>();
  for (let o = peek.chunkTableOffset; o < peek.chunkTableOffset + peek.chunkTableSize; o += 80) digests.add(peek.buf.subarray(o, o + 32).toString('hex'));
  for (const f of ['lib.rs', 'sync_io.rs']) assert.ok(digests.has(blake3(readFileSync(join(extracted, f))).toString('hex')), f);
});
