import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { amplifyRanges, BlobMeta, effectiveBatch, mergeChunks, metaFileSize, parseBlobMetaHeader } from '../../src/storage/index.js';
import type { ChunkInfo } from '../../src/storage/index.js';
import { fixture, fixturesSkip } from '../helpers/paths.js';

function chunk(index: number, coff: number, csize: number): ChunkInfo {
  return {
    fileOffset: 0,
    blobIndex: 0,
    chunkIndex: index,
    compressedOffset: coff,
    compressedSize: csize,
    uncompressedOffset: index * 4096,
    uncompressedSize: 4096,
    compressed: true,
    digest: Buffer.alloc(32),
  };
}

test('the cache-level window is at least 128 KiB (amplify_io 0 included)', () => {
  assert.equal(effectiveBatch(0), 131072);
  assert.equal(effectiveBatch(1 << 20), 1 << 20);
});

test('neighbours merge while the gap is at most batch >> 7', () => {
  // batch 128 KiB -> gaps up to 1024 bytes merge.
  const cs = [chunk(0, 0, 1000), chunk(1, 2024, 1000), chunk(2, 4049, 1000), chunk(3, 10000, 10)];
  const ranges = mergeChunks(cs, 0);
  assert.deepEqual(
    ranges.map((r) => [r.offset, r.length, r.chunks.map((c) => c.chunkIndex)]),
    [
      [0, 3024, [0, 1]],
      [4049, 1000, [2]],
      [10000, 10, [3]],
    ],
  );
  // A bigger batch tolerates the bigger gaps: one request.
  assert.equal(mergeChunks(cs, 1 << 20).length, 1);
  // Input order does not matter.
  assert.deepEqual(mergeChunks([...cs].reverse(), 0), ranges);
});

test('merged requests are capped (16 MiB)', () => {
  const cs = Array.from({ length: 40 }, (_, i) => chunk(i, i * (1 << 20), 1 << 20));
  const ranges = mergeChunks(cs, 0);
  assert.equal(ranges.length, 3);
  assert.ok(ranges.every((r) => r.length <= 16 << 20));
});

test('amplification extends in chunk-index order within the window and stops at the first unwanted chunk', () => {
  const all = Array.from({ length: 10 }, (_, i) => chunk(i, i * 40000, 40000));
  const next = (i: number): ChunkInfo | undefined => (i === 6 ? undefined : all[i]);
  const a = amplifyRanges(mergeChunks([all[0] as ChunkInfo], 0), 0, 10, next);
  // 128 KiB window: 40000 x 3 = 120000 fits, x 4 = 160000 does not.
  assert.deepEqual(a[0]?.chunks.map((c) => c.chunkIndex), [0, 1, 2]);
  const b = amplifyRanges(mergeChunks([all[3] as ChunkInfo], 0), 1 << 20, 10, next);
  assert.deepEqual(b[0]?.chunks.map((c) => c.chunkIndex), [3, 4, 5], 'stops before unwanted chunk 6');
  assert.equal(b[0]?.length, 120000);
  const c = amplifyRanges(mergeChunks([all[9] as ChunkInfo], 1 << 20), 1 << 20, 10, next);
  assert.deepEqual(c[0]?.chunks.map((x) => x.chunkIndex), [9], 'last chunk of the blob');
  // A following chunk that is not contiguous in compressed space ends the extension.
  const gappy = [chunk(0, 0, 100), chunk(1, 100000, 100)];
  assert.deepEqual(amplifyRanges(mergeChunks([gappy[0] as ChunkInfo], 1 << 20), 1 << 20, 2, (i) => gappy[i])[0]?.chunks.length, 1);
});

const skip = fixturesSkip();

test('blob meta: header and CI v1 entries of the upstream v6 blob', { skip }, () => {
  const blob = readFileSync(fixture('tests/texture/blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef'));
  const h = parseBlobMetaHeader(blob.subarray(8346, 8346 + 4096));
  assert.deepEqual(h, {
    features: 0x70000021,
    ciCompressor: 0,
    ciEntries: 2,
    ciOffset: 8314,
    ciCompressedSize: 32,
    ciUncompressedSize: 32,
    zranOffset: 0,
    zranSize: 0,
    zranCount: 0,
  });
  const m = new BlobMeta(h, blob.subarray(8314, 8346), blob.subarray(8346, 8346 + 4096));
  assert.equal(m.v2, false);
  assert.deepEqual(m.entry(0), { index: 0, uncompressedOffset: 0, uncompressedSize: 16931, compressedOffset: 0, compressedSize: 4828, compressed: true, flags: 0 });
  assert.deepEqual(m.entry(1), { index: 1, uncompressedOffset: 20480, uncompressedSize: 13400, compressedOffset: 4828, compressedSize: 2974, compressed: true, flags: 0 });
  assert.equal(m.entry(2), undefined);
  assert.equal(m.entry(-1), undefined);
});

test('blob meta: the upstream zran .blob.meta cache file (CI v2, 163 entries) has the documented size', { skip }, () => {
  const file = readFileSync(fixture('tests/texture/zran/233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta'));
  const h = parseBlobMetaHeader(file.subarray(file.length - 4096));
  assert.equal(h.ciEntries, 163);
  assert.equal(h.features, 0xf);
  assert.equal(h.zranCount, 21);
  assert.equal(metaFileSize(h.ciUncompressedSize), file.length);
  const m = new BlobMeta(h, file.subarray(0, h.ciUncompressedSize), file.subarray(file.length - 4096));
  assert.equal(m.v2, true);
  const last = m.entry(162);
  assert.ok(last);
  // Blob uncompressed size 0x16c6000 (INDEX.md): the last chunk ends inside its final 4 KiB block.
  assert.equal(Math.ceil((last.uncompressedOffset + last.uncompressedSize) / 4096) * 4096, 0x16c6000);
  assert.equal(last.flags & 0x2, 0x2, 'ZRAN flag');
});

test('blob meta header: bad magic or size is rejected', () => {
  assert.throws(() => parseBlobMetaHeader(Buffer.alloc(4096)), { code: 'ERR_BLOB_META', message: /bad magic/ });
  assert.throws(() => parseBlobMetaHeader(Buffer.alloc(100)), { code: 'ERR_BLOB_META' });
});
