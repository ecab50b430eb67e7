// Byte-level comparison with upstream nydus-image: rebuild the tree of the v6 fixture
// (rafs-v6-2.2.boot + blob be7d77ee…, built with `--features blob-toc`) from its own file
// contents and metadata, and require the same bootstrap and blob except where upstream has
// since changed or where its bytes are arbitrary.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { decompress } from '../../src/native/index.js';
import { createImage, defaultBuildOptions } from '../../src/rafs/builder/index.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';
import { V6Peek } from '../helpers/v6-peek.js';

const kBoot = 'tests/texture/bootstrap/rafs-v6-2.2.boot';
const kBlobId = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';

/** Byte ranges [start, end) allowed to differ, with the reason. */
type Mask = [number, number, string][];

function diffOutside(ours: Buffer, theirs: Buffer, mask: Mask): string[] {
  const out: string[] = [];
  if (ours.length !== theirs.length) out.push(`length ${ours.length} != ${theirs.length}`);
  for (let i = 0; i < Math.min(ours.length, theirs.length); i++) {
    if (ours[i] !== theirs[i] && !mask.some(([s, e]) => i >= s && i < e)) {
      out.push(`byte ${i}: ${ours[i]} != ${theirs[i]}`);
      if (out.length > 20) break;
    }
  }
  return out;
}

const skip = fixturesSkip() || (process.getuid?.() !== 0 ? 'needs root to give the files uid/gid 0' : false);

test('rebuilding the upstream v6 fixture tree gives upstream bytes', { skip }, async () => {
  const theirsBoot = readFileSync(fixture(kBoot));
  const theirsBlob = readFileSync(fixture('tests/texture/blobs', kBlobId));
  const peek = new V6Peek(theirsBoot);
  const work = mkdtempSync(join(tmpdir(), 'builder-upstream-'));
  try {
    const src = join(work, 'src');
    mkdirSync(src);
    chmodSync(src, 0o755);
    const root = peek.inode(peek.rootNid);
    for (const d of peek.readDir(root)) {
      const name = d.name.toString();
      if (name === '.' || name === '..') continue;
      const ino = peek.lookup(name);
      const [c] = peek.chunks(ino);
      // Single-chunk zstd files: CI entry -> compressed range in the blob.
      const ci = 8314 + c!.ciIndex * 16;
      const comp = theirsBlob.readBigUInt64LE(ci + 8);
      const coff = Number(comp & 0xff_ffff_ffffn);
      const csize = Number(comp >> 44n) + 1;
      const data = decompress(3, theirsBlob.subarray(coff, coff + csize), ino.size);
      const path = join(src, name);
      writeFileSync(path, data);
      chmodSync(path, ino.mode & 0o7777);
      execFileSync('touch', ['-d', `@${ino.mtime}.${String(ino.mtimeNsec).padStart(9, '0')}`, path]);
    }
    const out = join(work, 'out');
    mkdirSync(out);
    const r = await createImage({ ...defaultBuildOptions(src), blobToc: true, blobDir: out, bootstrapPath: join(out, 'bootstrap') });
    const oursBoot = readFileSync(r.bootstrapPath!);
    const oursBlob = readFileSync(r.blobPath!);

    const toc = 13530;
    const blobMask: Mask = [
      [toc + 56, toc + 64, 'TOC image.blob offset: 2.2 recorded the end of the data, newer builders 0'],
      ...[0, 1, 2, 3].map((i): [number, number, string] => [toc + i * 128 + 124, toc + i * 128 + 128, 'reserved TOC bytes (uninitialised upstream)']),
    ];
    assert.deepEqual(diffOutside(oursBlob, theirsBlob, blobMask), []);

    const bootMask: Mask = [
      [1152 + 3, 1152 + 4, 'ext-sb flags: newer builders set ENCRYPTION_NONE (0x0100_0000)'],
      [1408, 1408 + 64, 'device slot blob id (ours: sha256 of the blob file)'],
      [1408 + 68, 1408 + 72, 'mapped_blkaddr: 512 KiB alignment now, 2 MiB in 2.2'],
      [4096, 4096 + 64, 'blob table id'],
      [4096 + 136, 4096 + 168, 'blob_toc_digest covers the TOC bytes above'],
      [peek.offsetOf(peek.rootNid) + 20, peek.offsetOf(peek.rootNid) + 24, 'root i_ino: 0 in 2.2, 1 here (unused by readers)'],
    ];
    assert.deepEqual(diffOutside(oursBoot, theirsBoot, bootMask), []);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
