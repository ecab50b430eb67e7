import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseConfigText } from '../../src/config/index.js';
import { storageSettings } from '../../src/storage/index.js';
import type { ChunkInfo } from '../../src/storage/index.js';
import { chunksWithin, decodeAccessLog, encodeAccessLog, kMaxAccessEntries, Pacer, planChunkList, planRecorded, planWholeBlob } from '../../src/storage/prefetch/index.js';

function chunk(blob: number, index: number, coff: number, csize: number): ChunkInfo {
  return {
    fileOffset: 0,
    blobIndex: blob,
    chunkIndex: index,
    compressedOffset: coff,
    compressedSize: csize,
    uncompressedOffset: index * 0x10000,
    uncompressedSize: 0x10000,
    compressed: true,
    digest: Buffer.alloc(32),
  };
}

const shape = (rs: { blobIndex: number; offset: number; length: number; chunks: ChunkInfo[] }[]): [number, number, number, number[]][] =>
  rs.map((r) => [r.blobIndex, r.offset, r.length, r.chunks.map((c) => c.chunkIndex)]);

test('file-list plan: deduplicated, merged per blob within the batch, ordered by first mention', () => {
  // Blob 0: chunks 0..5 back to back, 40 KiB each. Blob 1: chunks 0..1.
  const b0 = [0, 1, 2, 3, 4, 5].map((i) => chunk(0, i, i * 40960, 40960));
  const b1 = [chunk(1, 0, 0, 1000), chunk(1, 1, 1000, 1000)];
  // The list names a late chunk first (a file whose data the builder put at the end).
  const list = [b0[4], b0[5], b1[0], b0[0], b0[1], b0[4], b1[1], b0[2]] as ChunkInfo[];
  const plan = planChunkList(list, 128 * 1024);
  assert.deepEqual(shape(plan), [
    [0, 163840, 81920, [4, 5]],
    [1, 0, 2000, [0, 1]],
    [0, 0, 122880, [0, 1, 2]],
  ]);
  // A batch below 128 KiB counts as 128 KiB (upstream's floor): same plan.
  assert.deepEqual(shape(planChunkList(list, 4096)), shape(plan));
  // A gap larger than batch >> 7 splits.
  const gapped = [chunk(0, 0, 0, 1000), chunk(0, 1, 1000 + 1025, 1000)];
  assert.equal(planChunkList(gapped, 128 * 1024).length, 2);
  assert.equal(planChunkList(gapped, 1 << 20).length, 1);
});

test('a chunk larger than the batch is a request alone; whole-blob plans cover every chunk once', () => {
  const sorted = [chunk(0, 0, 0, 200_000), chunk(0, 1, 200_000, 50_000), chunk(0, 2, 250_000, 50_000), chunk(0, 3, 300_000, 50_000)];
  const plan = planWholeBlob(0, sorted, 128 * 1024);
  assert.deepEqual(shape(plan), [
    [0, 0, 200_000, [0]],
    [0, 200_000, 100_000, [1, 2]],
    [0, 300_000, 50_000, [3]],
  ]);
  for (const r of plan.slice(1)) assert.ok(r.length <= 128 * 1024);
});

test('recorded ranges replay exactly: touching ranges joined within the batch, earliest first, no byte added', () => {
  const sorted = [0, 1, 2, 3, 4, 5].map((i) => chunk(0, i, i * 100, 100));
  assert.deepEqual(chunksWithin(sorted, 100, 200).map((c) => c.chunkIndex), [1, 2]);
  assert.deepEqual(chunksWithin(sorted, 50, 200).map((c) => c.chunkIndex), [1], 'partial chunks are left out');
  // Read order: 4, 0, 1 (touches 0), 3 (touches 4 from below), then a range of another build.
  const log = [{ offset: 400, length: 100 }, { offset: 0, length: 100 }, { offset: 100, length: 100 }, { offset: 300, length: 100 }, { offset: 10_000, length: 10 }];
  assert.deepEqual(shape(planRecorded(0, log, sorted, 0)), [
    [0, 300, 200, [3, 4]],
    [0, 0, 200, [0, 1]],
  ]);
  // Chunk 2 was never read: the plan does not bridge the hole, whatever the batch.
  assert.deepEqual(shape(planRecorded(0, log, sorted, 1 << 20)).map((r) => r[1]), [300, 0]);
  // The batch caps joining (at least 128 KiB, upstream's floor).
  const big = [0, 1, 2].map((i) => chunk(0, i, i * 100_000, 100_000));
  const plan = planRecorded(0, big.map((c) => ({ offset: c.compressedOffset, length: c.compressedSize })), big, 0);
  assert.deepEqual(shape(plan), [
    [0, 0, 100_000, [0]],
    [0, 100_000, 100_000, [1]],
    [0, 200_000, 100_000, [2]],
  ]);
  assert.equal(planRecorded(0, big.map((c) => ({ offset: c.compressedOffset, length: c.compressedSize })), big, 1 << 20).length, 1);
});

test('readahead log: 16-byte entries round-trip; damaged logs are refused with the reason', () => {
  const ranges = [{ offset: 0, length: 4096 }, { offset: 2 ** 40, length: 131072 }];
  const buf = encodeAccessLog(ranges);
  assert.equal(buf.length, 32);
  assert.equal(buf.readBigUInt64LE(16), 2n ** 40n);
  assert.equal(buf.readUInt32LE(24), 131072);
  assert.deepEqual(decodeAccessLog(buf, 0, 'log'), ranges);
  assert.throws(() => decodeAccessLog(buf.subarray(0, 20), 0, 'log'), /log: 20 bytes is not a whole number of 16-byte entries/);
  assert.throws(() => decodeAccessLog(buf, 8192, 'log'), { code: 'ERR_READAHEAD_LOG', message: /entry 1: range 1099511627776\+131072 is beyond the blob/ });
  const reserved = Buffer.from(buf);
  reserved.writeUInt32LE(1, 12);
  assert.throws(() => decodeAccessLog(reserved, 0, 'log'), /entry 0: reserved field is not zero/);
  const zero = Buffer.from(buf);
  zero.writeUInt32LE(0, 8);
  assert.throws(() => decodeAccessLog(zero, 0, 'log'), /entry 0: length 0 out of range/);
  assert.throws(() => decodeAccessLog(Buffer.alloc((kMaxAccessEntries + 1) * 16), 0, 'log'), /more than 2048/);
  assert.equal(encodeAccessLog(Array.from({ length: 3000 }, (_, i) => ({ offset: i, length: 1 }))).length, kMaxAccessEntries * 16);
});

test('pacer: requests get consecutive slots at the configured rate, unlimited never waits', async () => {
  let now = 1000;
  const slots: number[] = [];
  const p = new Pacer(1000, () => now);
  // 1000 bytes/s: a 100-byte request occupies 100 ms of the timeline.
  const waits = [0, 1, 2].map(async () => {
    const t0 = performance.now();
    await p.take(100);
    slots.push(performance.now() - t0);
  });
  await Promise.all(waits);
  assert.equal(slots.filter((ms) => ms < 50).length, 1, 'the first goes at once');
  assert.ok(slots.some((ms) => ms >= 95), `later ones wait their slot: ${slots.map((s) => s.toFixed(0)).join(',')}`);
  // Idle time earns no burst: after a pause the next request still goes at once, the one after waits.
  now += 10_000;
  const t = performance.now();
  await p.take(10);
  assert.ok(performance.now() - t < 50);
  const unlimited = new Pacer(0);
  const t2 = performance.now();
  for (let i = 0; i < 100; i++) await unlimited.take(1 << 30);
  assert.ok(performance.now() - t2 < 50);
});

test('settings: rafs.prefetch decides, cache.prefetch tunes the workers when enabled, v1 fs_prefetch maps to both', () => {
  const v2 = (o: Record<string, unknown>): ReturnType<typeof storageSettings> =>
    storageSettings(parseConfigText(JSON.stringify({ version: 2, backend: { type: 'localfs', localfs: { dir: '/d' } }, ...o })).config);
  assert.equal(v2({}).prefetch?.enable, false);
  assert.deepEqual(v2({ rafs: { prefetch: { enable: true, threads: 3, batch_size: 262144, bandwidth_limit: 5, prefetch_all: true } } }).prefetch, {
    enable: true,
    prefetchAll: true,
    threads: 3,
    batchSize: 262144,
    bandwidthLimit: 5,
  });
  const both = v2({ rafs: { prefetch: { enable: true, threads: 3 } }, cache: { type: 'dummycache', prefetch: { enable: true, threads: 9, bandwidth_limit: 7 } } });
  assert.equal(both.prefetch?.threads, 9);
  assert.equal(both.prefetch?.bandwidthLimit, 7);
  assert.equal(both.prefetch?.prefetchAll, false);
  assert.equal(v2({ cache: { type: 'dummycache', prefetch: { enable: true } } }).prefetch?.enable, false, 'cache.prefetch alone prefetches nothing, as upstream');
  const v1 = storageSettings(
    parseConfigText(JSON.stringify({
      device: { backend: { type: 'localfs', config: { dir: '/d', readahead: true, readahead_sec: 3 } } },
      fs_prefetch: { enable: true, threads_count: 4, merging_size: 131072, bandwidth_rate: 1048576 },
    })).config,
    'v1',
  );
  assert.deepEqual(v1.prefetch, { enable: true, prefetchAll: true, threads: 4, batchSize: 131072, bandwidthLimit: 1048576 });
  assert.deepEqual(v1.readahead, { enable: true, seconds: 3 });
  assert.deepEqual(v2({}).readahead, { enable: false, seconds: 10 });
});
