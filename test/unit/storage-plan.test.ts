import assert from 'node:assert/strict';
import { test } from 'node:test';

import { amplifyRanges, effectiveBatch, mergeChunks } from '../../src/storage/index.js';
import type { ChunkInfo } from '../../src/storage/index.js';

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
