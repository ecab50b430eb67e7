import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { createImage, defaultBuildOptions, type BuildOptions } from '../../src/rafs/builder/index.js';
import { binDir, fixture, fixturesSkip } from '../helpers/paths.js';
import { patternBytes } from '../helpers/rich-tree.js';
import { V6Peek } from '../helpers/v6-peek.js';

const work = mkdtempSync(join(tmpdir(), 'builder-check-'));
after(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

function nydusImage(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(binDir, 'nydus-image'), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function image(o: Partial<BuildOptions> = {}): Promise<{ out: string; boot: string; blob: string }> {
  const src = join(work, `src-${seq++}`);
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'd', 'a'), patternBytes(0x3000, 1));
  writeFileSync(join(src, 'b'), patternBytes(0x800, 2));
  const out = join(work, `out-${seq++}`);
  mkdirSync(out);
  const r = await createImage({ ...defaultBuildOptions(src), chunkSize: 0x1000, blobDir: out, bootstrapPath: join(out, 'bootstrap'), ...o });
  return { out, boot: r.bootstrapPath!, blob: r.blobPath! };
}

test('check accepts our images and verifies every chunk', async () => {
  for (const o of [{}, { fsVersion: 5 as const }, { blobToc: true }]) {
    const { out, boot } = await image(o);
    const r = nydusImage(['check', '-D', out, boot]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /RAFS filesystem metadata is valid, referenced data blobs:/);
    assert.match(r.stdout, /verified 4 chunks/);
  }
});

test('check accepts the upstream fixtures, v5 inode digests included', { skip: fixturesSkip() }, () => {
  for (const [boot, blobs] of [
    ['tests/texture/bootstrap/rafs-v6-2.2.boot', 'tests/texture/blobs'],
    ['tests/texture/repeatable/sha256-nocompress-repeatable', 'tests/texture/repeatable/blobs'],
    ['tests/texture/repeatable/blake3-lz4_block-non_repeatable', 'tests/texture/repeatable/blobs'],
  ] as const) {
    const r = nydusImage(['check', '-D', fixture(blobs), fixture(boot)]);
    assert.equal(r.status, 0, `${boot}: ${r.stderr}`);
  }
});

test('check lists corrupt chunks, short blobs, missing blobs and bad metadata, and exits 1', async () => {
  const { out, boot, blob } = await image({ compressor: 'none' });
  const data = readFileSync(blob);
  data[0x1000 + 7] = data[0x1000 + 7]! ^ 0xff; // inside the second stored chunk
  writeFileSync(blob, data);
  let r = nydusImage(['check', '-D', out, boot]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nydus-image: check: \/d\/a: chunk at file offset \d+: .*blake3 [0-9a-f]{64} != [0-9a-f]{64}/);
  assert.match(r.stderr, /found 1 problem/);

  truncateSync(blob, 100);
  r = nydusImage(['check', '-D', out, boot]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /file has 100 bytes, the image says/);

  rmSync(blob);
  r = nydusImage(['check', '-D', out, boot]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /not found in/);

  // Without --blob-dir only the metadata is checked: a bad dirent nid is still found.
  const b = readFileSync(boot);
  const p = new V6Peek(b);
  const root = p.inode(p.rootNid);
  const dataOff = p.offsetOf(p.rootNid) + 64; // inline dirents of the root
  b.writeBigUInt64LE(123456789n, dataOff + 12 * 2); // first child entry
  writeFileSync(boot, b);
  assert.equal(root.layout, 2);
  r = nydusImage(['check', boot]);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /nydus-image: check: \/b?: /);
  assert.equal(readdirSync(out).length, 1);
});

test('inspect prints the superblock, blobs and tree; --json and -R requests', async () => {
  const { out, boot } = await image({ prefetchPolicy: 'fs', prefetchPatterns: [Buffer.from('/b')] });
  let r = nydusImage(['inspect', boot]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Version: +6$/m);
  assert.match(r.stdout, /COMPRESSION_ZSTD/);
  assert.match(r.stdout, /file +0644 .* size 12288 .* \/d\/a$/m);
  assert.match(r.stdout, /chunk @0x2000: blob 0 #\d+/);
  r = nydusImage(['inspect', '--json', '-D', out, boot]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { super: { version: number }; blobs: { blobId: string }[]; tree: { path: string; chunks?: unknown[] }[] };
  assert.equal(j.super.version, 6);
  assert.deepEqual(j.tree.map((e) => e.path), ['/', '/b', '/d', '/d/a']);
  assert.equal(j.tree[3]!.chunks!.length, 3);
  r = nydusImage(['inspect', '-R', 'stats', boot]);
  assert.equal((JSON.parse(r.stdout) as { inodes_count: number }).inodes_count, 4);
  r = nydusImage(['inspect', '-R', 'prefetch', boot]);
  assert.equal((JSON.parse(r.stdout) as { path: string }[])[0]!.path, '/b');
  r = nydusImage(['inspect', '-R', 'stat /d/a', boot]);
  assert.equal((JSON.parse(r.stdout) as { size: number }).size, 0x3000);
  r = nydusImage(['inspect', '-R', 'frob', boot]);
  assert.equal(r.status, 2);
  r = nydusImage(['inspect', join(work, 'missing')]);
  assert.equal(r.status, 1);
});

test('check verifies v5 inode digests', async () => {
  const { boot } = await image({ fsVersion: 5 });
  const b = readFileSync(boot);
  const rootRec = b.readUInt32LE(8192) * 8; // inode table entry of the root
  b[rootRec] = b[rootRec]! ^ 1; // first byte of the root's digest
  writeFileSync(boot, b);
  const r = nydusImage(['check', boot]);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /nydus-image: check: \/: inode digest [0-9a-f]{64} != computed [0-9a-f]{64}/);
});

type InspectJson = { tree: { path: string; chunks?: unknown }[] };
const chunksOf = (stdout: string): [string, unknown][] => (JSON.parse(stdout) as InspectJson).tree.filter((e) => e.chunks !== undefined).map((e) => [e.path, e.chunks]);

test('check and inspect without --blob-dir read a v6 image chunk table, as upstream (ours and the upstream fixture)', async () => {
  const ours = await image({ blobToc: true });
  const cases: [string, string][] = [[ours.boot, ours.out]];
  if (!fixturesSkip()) cases.push([fixture('tests/texture/bootstrap/rafs-v6-2.2.boot'), fixture('tests/texture/blobs')]);
  for (const [boot, blobDir] of cases) {
    assert.match(nydusImage(['inspect', boot]).stdout, /INLINED_CHUNK_DIGEST/, boot);
    const r = nydusImage(['check', boot]);
    assert.equal(r.status, 0, `${boot}: ${r.stderr}`);
    assert.match(r.stdout, /^RAFS filesystem metadata is valid, referenced data blobs: \n\t 0: [0-9a-f]{64}, /, boot);
    // The chunk table says what the blob meta says: same offsets, sizes and digests.
    const fromTable = nydusImage(['inspect', '--json', boot]);
    const fromMeta = nydusImage(['inspect', '--json', '-D', blobDir, boot]);
    assert.equal(fromTable.status, 0, fromTable.stderr);
    const table = chunksOf(fromTable.stdout);
    assert.ok(table.length >= 2 && table.every(([, c]) => Array.isArray(c) && c.length > 0), JSON.stringify(table));
    assert.deepEqual(table, chunksOf(fromMeta.stdout), boot);
  }
});

test('without the blob and without a chunk table, check and inspect name --blob-dir, not internal calls', async () => {
  const { boot } = await image({ blobToc: true });
  const b = readFileSync(boot);
  b.writeBigUInt64LE(0n, 1152 + 32); // extended superblock: chunk table size 0
  writeFileSync(boot, b);
  const r = nydusImage(['check', boot]);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /nydus-image: check: \/b: .*chunk info of blob [0-9a-f]{64} lives in its blob meta .*--blob-dir \(-D\)$/m);
  const i = nydusImage(['inspect', boot]);
  assert.equal(i.status, 0, i.stderr);
  assert.match(i.stdout, /chunks unavailable: .*--blob-dir \(-D\)$/m);
  for (const out of [r.stderr, i.stdout]) assert.doesNotMatch(out, /setBlobMeta|blobMetaProvider|blobDir\b/);
});
